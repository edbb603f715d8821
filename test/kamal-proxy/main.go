// Command kamal-proxy is a test stand-in for basecamp/kamal-proxy v0.9.2.
// It implements the subset Kamal (and kctl's agent) drives: `run`, `deploy`
// (blocks until the target is healthy, swaps, drains the old target),
// `remove`, `stop` (503 page), `resume` and `list`, with the real flags,
// exit codes and error texts (shared/reference/kamal-proxy.md §8, §10).
// The CLI talks to `run` over net/rpc on a unix socket, like the real proxy.
// State is persisted atomically under $HOME/.config/kamal-proxy.
//
// It is built into a FROM-scratch image by internal/agent/docker/dockertest;
// production never uses it.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/rpc"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	if err := Run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s\n", err)
		os.Exit(1)
	}
}

// Run executes one kamal-proxy command.
func Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(`unknown command "" for "kamal-proxy"`)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runServer(ctx, rest)
	case "deploy":
		return deployCmd(rest)
	case "remove", "rm":
		svc, _, err := parse(rest, map[string]kind{}, true)
		if err != nil {
			return err
		}
		return call("Remove", ServiceArgs{Service: svc}, new(bool))
	case "stop":
		svc, fl, err := parse(rest, map[string]kind{"drain-timeout": kDuration, "message": kString}, true)
		if err != nil {
			return err
		}
		return call("Stop", StopArgs{Service: svc, DrainTimeout: fl.duration("drain-timeout", 30*time.Second), Message: fl.str("message", "")}, new(bool))
	case "pause":
		svc, fl, err := parse(rest, map[string]kind{"drain-timeout": kDuration, "max-pause": kDuration}, true)
		if err != nil {
			return err
		}
		return call("Pause", StopArgs{Service: svc, DrainTimeout: fl.duration("drain-timeout", 30*time.Second)}, new(bool))
	case "resume":
		svc, _, err := parse(rest, map[string]kind{}, true)
		if err != nil {
			return err
		}
		return call("Resume", ServiceArgs{Service: svc}, new(bool))
	case "list", "ls":
		if _, _, err := parse(rest, map[string]kind{}, false); err != nil {
			return err
		}
		var resp ListResponse
		if err := call("List", true, &resp); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Service\tHost\tPath\tTarget\tState\tTLS")
		names := make([]string, 0, len(resp.Services))
		for n := range resp.Services {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			d := resp.Services[n]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n, d.Host, d.Path, d.Target, d.State, map[bool]string{true: "yes", false: "no"}[d.TLS])
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown command %q for \"kamal-proxy\"", cmd)
	}
}

// ---- flag parsing (pflag semantics: --k=v, --k v, bare bools, slices) ----

type kind int

const (
	kString kind = iota
	kBool
	kDuration
	kInt
	kSlice
)

type flags map[string][]string

func (f flags) str(name, def string) string {
	if v, ok := f[name]; ok {
		return v[len(v)-1]
	}
	return def
}

func (f flags) boolean(name string, def bool) bool {
	if v, ok := f[name]; ok {
		b, _ := strconv.ParseBool(v[len(v)-1])
		return b
	}
	return def
}

func (f flags) duration(name string, def time.Duration) time.Duration {
	if v, ok := f[name]; ok {
		d, _ := time.ParseDuration(v[len(v)-1])
		return d
	}
	return def
}

func (f flags) slice(name string) []string {
	var out []string
	for _, v := range f[name] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func parse(args []string, spec map[string]kind, wantService bool) (string, flags, error) {
	fl := flags{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") || a == "--" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a[2:], "=")
		k, ok := spec[name]
		if !ok {
			return "", nil, fmt.Errorf("unknown flag: --%s", name)
		}
		if !hasVal {
			if k == kBool {
				val = "true"
			} else {
				if i+1 >= len(args) {
					return "", nil, fmt.Errorf("flag needs an argument: --%s", name)
				}
				i++
				val = args[i]
			}
		}
		switch k {
		case kBool:
			if _, err := strconv.ParseBool(val); err != nil {
				return "", nil, fmt.Errorf("invalid argument %q for \"--%s\" flag: %v", val, name, err)
			}
		case kDuration:
			if _, err := time.ParseDuration(val); err != nil {
				return "", nil, fmt.Errorf("invalid argument %q for \"--%s\" flag: %v", val, name, err)
			}
		case kInt:
			if _, err := strconv.ParseInt(val, 10, 64); err != nil {
				return "", nil, fmt.Errorf("invalid argument %q for \"--%s\" flag: %v", val, name, err)
			}
		}
		fl[name] = append(fl[name], val)
	}
	if wantService {
		if len(pos) != 1 {
			return "", nil, fmt.Errorf("accepts 1 arg(s), received %d", len(pos))
		}
		return pos[0], fl, nil
	}
	if len(pos) != 0 {
		return "", nil, fmt.Errorf("unknown command %q for \"kamal-proxy\"", pos[0])
	}
	return "", fl, nil
}

var deployFlags = map[string]kind{
	"target": kSlice, "read-target": kSlice, "host": kSlice, "path-prefix": kSlice,
	"strip-path-prefix": kBool, "tls": kBool, "tls-staging": kBool,
	"tls-certificate-path": kString, "tls-private-key-path": kString, "tls-acme-cache-path": kString,
	"tls-redirect": kBool, "canonical-host": kString,
	"deploy-timeout": kDuration, "drain-timeout": kDuration, "force": kBool,
	"health-check-interval": kDuration, "health-check-timeout": kDuration, "health-check-path": kString,
	"health-check-port": kInt, "health-check-host": kString,
	"writer-affinity-timeout": kDuration, "read-target-websockets": kBool, "target-timeout": kDuration,
	"buffer-requests": kBool, "buffer-responses": kBool, "buffer-memory": kInt,
	"max-request-body": kInt, "max-response-body": kInt, "error-pages": kString,
	"log-request-header": kSlice, "log-response-header": kSlice, "forward-headers": kBool,
	"scope-cookie-paths": kBool,
}

var targetRE = regexp.MustCompile(`^(\w[-_.\w+]+)(:\d+)?$`)

func deployCmd(args []string) error {
	svc, fl, err := parse(args, deployFlags, true)
	if err != nil {
		return err
	}
	targets := fl.slice("target")
	if len(targets) == 0 {
		return errors.New(`required flag(s) "target" not set`)
	}
	for _, t := range targets {
		if !targetRE.MatchString(t) {
			return fmt.Errorf("invalid target: %s", t)
		}
	}
	hosts := fl.slice("host")
	tls := fl.boolean("tls", false)
	if tls && len(hosts) == 0 {
		return errors.New("invalid service options: host must be set when using TLS")
	}
	if _, ok := fl["max-request-body"]; ok {
		if _, set := fl["buffer-requests"]; !set {
			return errors.New("--max-request-body requires --buffer-requests")
		}
	}
	if _, ok := fl["max-response-body"]; ok {
		if _, set := fl["buffer-responses"]; !set {
			return errors.New("--max-response-body requires --buffer-responses")
		}
	}
	da := DeployArgs{
		Service:            svc,
		TargetURLs:         targets,
		Hosts:              hosts,
		PathPrefixes:       fl.slice("path-prefix"),
		TLS:                tls,
		TLSCertificatePath: fl.str("tls-certificate-path", ""),
		TLSPrivateKeyPath:  fl.str("tls-private-key-path", ""),
		TLSRedirect:        fl.boolean("tls-redirect", true),
		DeployTimeout:      fl.duration("deploy-timeout", 30*time.Second),
		DrainTimeout:       fl.duration("drain-timeout", 30*time.Second),
		Force:              fl.boolean("force", false),
		HealthPath:         fl.str("health-check-path", "/up"),
		HealthInterval:     fl.duration("health-check-interval", time.Second),
		HealthTimeout:      fl.duration("health-check-timeout", 5*time.Second),
		HealthHost:         fl.str("health-check-host", ""),
		TargetTimeout:      fl.duration("target-timeout", 30*time.Second),
		StripPrefix:        fl.boolean("strip-path-prefix", true),
		LogRequestHeaders:  fl.slice("log-request-header"),
		LogResponseHeaders: fl.slice("log-response-header"),
	}
	if p := fl.str("health-check-port", ""); p != "" {
		da.HealthPort, _ = strconv.Atoi(p)
	}
	return call("Deploy", da, new(bool))
}

// ---- RPC ----

// DeployArgs, StopArgs, ServiceArgs and ListResponse are the RPC payloads.
type DeployArgs struct {
	Service                               string
	TargetURLs                            []string
	Hosts, PathPrefixes                   []string
	TLS, Force, StripPrefix               bool
	TLSCertificatePath, TLSPrivateKeyPath string
	TLSRedirect                           bool
	DeployTimeout, DrainTimeout           time.Duration
	HealthPath, HealthHost                string
	HealthPort                            int
	HealthInterval, HealthTimeout         time.Duration
	TargetTimeout                         time.Duration
	LogRequestHeaders, LogResponseHeaders []string
}

// StopArgs stops (maintenance) or pauses a service.
type StopArgs struct {
	Service      string
	DrainTimeout time.Duration
	Message      string
}

// ServiceArgs names a service.
type ServiceArgs struct{ Service string }

// ServiceDescription is one row of `list`.
type ServiceDescription struct {
	Host, Path, Target, State string
	TLS                       bool
}

// ListResponse answers List.
type ListResponse struct{ Services map[string]ServiceDescription }

func socketPath() string {
	if p := os.Getenv("KAMAL_PROXY_SOCKET"); p != "" {
		return p
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "kamal-proxy.sock")
	}
	return filepath.Join(os.TempDir(), "kamal-proxy.sock")
}

func call(method string, args, reply any) error {
	c, err := rpc.Dial("unix", socketPath())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Call("kamal-proxy."+method, args, reply); err != nil {
		var se rpc.ServerError
		if errors.As(err, &se) {
			return errors.New(string(se))
		}
		return err
	}
	return nil
}

// ---- server ----

var (
	errServiceNotFound = errors.New("service not found")
	errHostConflict    = errors.New("host settings conflict with another service")
)

const (
	stateRunning = 0
	statePaused  = 1
	stateStopped = 2
)

type target struct {
	addr     string
	proxy    *httputil.ReverseProxy
	inflight atomic.Int64
	draining atomic.Bool
}

type service struct {
	Name        string     `json:"name"`
	Args        DeployArgs `json:"options"`
	Targets     []string   `json:"active_targets"`
	State       int        `json:"state"`
	StopMessage string     `json:"stop_message"`
	targets     []*target
	cert        *tls.Certificate // the custom certificate, if any
	next        atomic.Uint64
}

type server struct {
	mu        sync.RWMutex // guards services
	services  map[string]*service
	statePath string
}

func envOr(key, def string) string {
	if v := os.Getenv("KAMAL_PROXY_" + key); v != "" {
		return v
	}
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func runServer(ctx context.Context, args []string) error {
	_, fl, err := parse(args, map[string]kind{"debug": kBool, "http-port": kInt, "https-port": kInt, "metrics-port": kInt, "http3": kBool}, false)
	if err != nil {
		return err
	}
	httpPort := fl.str("http-port", envOr("HTTP_PORT", "80"))
	httpsPort := fl.str("https-port", envOr("HTTPS_PORT", "443"))
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	home := os.Getenv("HOME")
	if home == "" {
		home = os.TempDir()
	}
	dir := filepath.Join(home, ".config", "kamal-proxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		dir = os.TempDir()
	}
	s := &server{services: map[string]*service{}, statePath: filepath.Join(dir, "kamal-proxy.state")}
	s.restore()

	if err := os.MkdirAll(filepath.Dir(socketPath()), 0o755); err != nil {
		return err
	}
	_ = os.Remove(socketPath())
	ul, err := net.Listen("unix", socketPath())
	if err != nil {
		return err
	}
	rs := rpc.NewServer()
	if err := rs.RegisterName("kamal-proxy", &handler{s: s}); err != nil {
		return err
	}
	go rs.Accept(ul)

	hl, err := net.Listen("tcp", ":"+httpPort)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(hl) }()
	// HTTPS: each TLS service's certificate by SNI. The stand-in has custom
	// certificates (--tls-certificate-path) only: no ACME.
	tl, err := net.Listen("tcp", ":"+httpsPort)
	if err != nil {
		return err
	}
	tsrv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, TLSConfig: &tls.Config{GetCertificate: s.certificate}}
	go func() { _ = tsrv.ServeTLS(tl, "", "") }()
	logJSON("Server started", map[string]any{"http": httpPort, "https": httpsPort})
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = ul.Close()
	_ = tsrv.Shutdown(sctx)
	return srv.Shutdown(sctx)
}

func logJSON(msg string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	fields["level"] = "INFO"
	fields["msg"] = msg
	b, _ := json.Marshal(fields)
	fmt.Println(string(b))
}

func newTarget(addr string, timeout time.Duration) *target {
	u := &url.URL{Scheme: "http", Host: addr}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   100,
		ResponseHeaderTimeout: timeout,
	}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		logJSON("Error while proxying", map[string]any{"target": addr, "error": err.Error()})
		w.WriteHeader(http.StatusBadGateway)
	}
	return &target{addr: addr, proxy: rp}
}

func (s *server) restore() {
	b, err := os.ReadFile(s.statePath)
	if err != nil {
		return
	}
	var svcs []*service
	if err := json.Unmarshal(b, &svcs); err != nil {
		return // errors ignored, as kamal-proxy does
	}
	for _, sv := range svcs {
		sv.cert, _ = loadCert(sv.Args) // a certificate gone since is refused at handshake
		for _, t := range sv.Targets {
			sv.targets = append(sv.targets, newTarget(t, sv.Args.TargetTimeout))
		}
		s.services[sv.Name] = sv
	}
}

// saveLocked writes the state atomically (temp file + rename).
func (s *server) saveLocked() error {
	names := make([]string, 0, len(s.services))
	for n := range s.services {
		names = append(names, n)
	}
	sort.Strings(names)
	list := make([]*service, 0, len(names))
	for _, n := range names {
		list = append(list, s.services[n])
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	tmp := s.statePath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.statePath)
}

func healthy(ctx context.Context, a DeployArgs, addr string) bool {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" {
		host, port = addr, "80"
	}
	if a.HealthPort != 0 {
		port = strconv.Itoa(a.HealthPort)
	}
	cctx, cancel := context.WithTimeout(ctx, a.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+a.HealthPath, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "kamal-proxy")
	if a.HealthHost != "" {
		req.Host = a.HealthHost
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		logJSON("Healthcheck failed", map[string]any{"target": addr, "error": err.Error()})
		return false
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		logJSON("Healthcheck failed", map[string]any{"target": addr, "status": resp.StatusCode})
	}
	return resp.StatusCode/100 == 2
}

func keys(a DeployArgs) [][2]string {
	hosts := a.Hosts
	if len(hosts) == 0 {
		hosts = []string{""}
	}
	prefixes := a.PathPrefixes
	if len(prefixes) == 0 {
		prefixes = []string{"/"}
	}
	var out [][2]string
	for _, h := range hosts {
		for _, p := range prefixes {
			out = append(out, [2]string{h, p})
		}
	}
	return out
}

func (s *server) deploy(a DeployArgs) error {
	if a.HealthPath == "" {
		a.HealthPath = "/up"
	}
	if a.HealthInterval <= 0 {
		a.HealthInterval = time.Second
	}
	if a.HealthTimeout <= 0 {
		a.HealthTimeout = 5 * time.Second
	}
	cert, err := loadCert(a)
	if err != nil {
		return err
	}
	var ts []*target
	for _, u := range a.TargetURLs {
		ts = append(ts, newTarget(u, a.TargetTimeout))
	}
	if !a.Force {
		ctx, cancel := context.WithTimeout(context.Background(), a.DeployTimeout)
		defer cancel()
		for _, t := range ts {
			for !healthy(ctx, a, t.addr) {
				select {
				case <-ctx.Done():
					return fmt.Errorf("target failed to become healthy within configured timeout (%s)", a.DeployTimeout)
				case <-time.After(a.HealthInterval):
				}
			}
		}
	}

	s.mu.Lock()
	mine := map[[2]string]bool{}
	for _, k := range keys(a) {
		mine[k] = true
	}
	for name, other := range s.services {
		if name == a.Service {
			continue
		}
		for _, k := range keys(other.Args) {
			if mine[k] {
				s.mu.Unlock()
				return errHostConflict
			}
		}
	}
	old := s.services[a.Service]
	nsv := &service{Name: a.Service, Args: a, Targets: a.TargetURLs, targets: ts, cert: cert}
	var oldTargets []*target
	if old != nil {
		nsv.State, nsv.StopMessage = old.State, old.StopMessage
		oldTargets = old.targets
	}
	s.services[a.Service] = nsv
	err = s.saveLocked()
	s.mu.Unlock()
	logJSON("Deployed", map[string]any{"service": a.Service, "targets": a.TargetURLs})
	drain(oldTargets, ts, a.DrainTimeout)
	return err
}

// loadCert loads a service's custom TLS certificate, as kamal-proxy's
// static certificate manager does when the service is deployed.
func loadCert(a DeployArgs) (*tls.Certificate, error) {
	if !a.TLS || a.TLSCertificatePath == "" {
		return nil, nil
	}
	c, err := tls.LoadX509KeyPair(a.TLSCertificatePath, a.TLSPrivateKeyPath)
	if err != nil {
		return nil, fmt.Errorf("unable to load TLS certificate: %w", err)
	}
	return &c, nil
}

// certificate picks the certificate of the TLS service for the SNI name.
func (s *server) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	sv := s.lookup(hello.ServerName, "/")
	if sv == nil || !sv.Args.TLS {
		return nil, fmt.Errorf("no TLS service for %q", hello.ServerName)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if sv.cert == nil {
		return nil, fmt.Errorf("no certificate for %q (the stand-in has no ACME)", hello.ServerName)
	}
	return sv.cert, nil
}

func drain(old, keep []*target, timeout time.Duration) {
	kept := map[string]bool{}
	for _, t := range keep {
		kept[t.addr] = true
	}
	deadline := time.Now().Add(timeout)
	for _, t := range old {
		if kept[t.addr] {
			continue
		}
		t.draining.Store(true)
		for t.inflight.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (s *server) lookup(host, path string) *service {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	match := func(h string) *service {
		var best *service
		bestLen := -1
		for _, sv := range s.services {
			for _, k := range keys(sv.Args) {
				if k[0] != h {
					continue
				}
				p := k[1]
				if p == "/" || path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
					if len(p) > bestLen {
						best, bestLen = sv, len(p)
					}
				}
			}
		}
		return best
	}
	if sv := match(host); sv != nil {
		return sv
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		if sv := match("*" + host[i:]); sv != nil {
			return sv
		}
	}
	return match("")
}

const page503 = `<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>%s</p></body></html>`

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sv := s.lookup(r.Host, r.URL.Path)
	if sv == nil {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	s.mu.RLock()
	state, msg, ts, a := sv.State, sv.StopMessage, sv.targets, sv.Args
	s.mu.RUnlock()
	if a.TLS && a.TLSRedirect && r.TLS == nil {
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
		return
	}
	if state != stateRunning {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == a.HealthPath {
			w.WriteHeader(http.StatusOK)
			return
		}
		if msg == "" {
			msg = "The service is temporarily unavailable. Please try again later."
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, page503, msg)
		return
	}
	if len(ts) == 0 {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	t := ts[int(sv.next.Add(1))%len(ts)]
	t.inflight.Add(1)
	defer t.inflight.Add(-1)
	r.Header.Set("X-Kamal-Target", t.addr)
	if r.Header.Get("X-Request-Start") == "" {
		r.Header.Set("X-Request-Start", fmt.Sprintf("t=%d", time.Now().UnixMilli()))
	}
	t.proxy.ServeHTTP(w, r)
	logJSON("Request", map[string]any{"service": sv.Name, "target": t.addr, "path": r.URL.Path, "method": r.Method, "duration": time.Since(start).Nanoseconds()})
}

type handler struct{ s *server }

func (h *handler) Deploy(a DeployArgs, reply *bool) error {
	*reply = true
	return h.s.deploy(a)
}

func (h *handler) Remove(a ServiceArgs, reply *bool) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if _, ok := h.s.services[a.Service]; !ok {
		return errServiceNotFound
	}
	delete(h.s.services, a.Service)
	*reply = true
	return h.s.saveLocked()
}

func (h *handler) setState(service string, state int, msg string, drainTimeout time.Duration) error {
	h.s.mu.Lock()
	sv, ok := h.s.services[service]
	if !ok {
		h.s.mu.Unlock()
		return errServiceNotFound
	}
	sv.State, sv.StopMessage = state, msg
	ts := sv.targets
	err := h.s.saveLocked()
	h.s.mu.Unlock()
	if state != stateRunning {
		deadline := time.Now().Add(drainTimeout)
		for _, t := range ts {
			for t.inflight.Load() > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	return err
}

func (h *handler) Stop(a StopArgs, reply *bool) error {
	*reply = true
	return h.setState(a.Service, stateStopped, a.Message, a.DrainTimeout)
}

func (h *handler) Pause(a StopArgs, reply *bool) error {
	*reply = true
	return h.setState(a.Service, statePaused, "", a.DrainTimeout)
}

func (h *handler) Resume(a ServiceArgs, reply *bool) error {
	*reply = true
	return h.setState(a.Service, stateRunning, "", 0)
}

func (h *handler) List(_ bool, reply *ListResponse) error {
	h.s.mu.RLock()
	defer h.s.mu.RUnlock()
	reply.Services = map[string]ServiceDescription{}
	for n, sv := range h.s.services {
		host := strings.Join(sv.Args.Hosts, ",")
		if host == "" {
			host = "*"
		}
		path := strings.Join(sv.Args.PathPrefixes, ",")
		if path == "" {
			path = "/"
		}
		reply.Services[n] = ServiceDescription{
			Host: host, Path: path, Target: strings.Join(sv.Targets, ","),
			State: [...]string{"running", "paused", "stopped"}[sv.State], TLS: sv.Args.TLS,
		}
	}
	return nil
}
