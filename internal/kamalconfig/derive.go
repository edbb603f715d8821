package kamalconfig

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
	"github.com/kctl-dev/kctl/internal/spec"
)

// Hostname is Kamal's container hostname for host: the host truncated to 51
// characters, a dash and 12 hex characters.
func (c *Config) Hostname(host string) string {
	suffix := ""
	if c.opts.HostnameSuffix != nil {
		suffix = c.opts.HostnameSuffix()
	} else {
		suffix = randomHex12()
	}
	h := host
	if len(h) > 51 {
		h = h[:51]
	}
	return h + "-" + suffix
}

// argPairs turns a hash into argumentize pairs: present values are quoted,
// false is written bare as key=false, nil and blank values leave the key alone.
func argPairs(keys []string, m map[string]*yaml11.Value) []*specv1.KeyValue {
	var out []*specv1.KeyValue
	for _, k := range keys {
		v := m[k]
		switch {
		case v.Present():
			out = append(out, &specv1.KeyValue{Key: k, Value: v.S()})
		case v.IsFalse():
			out = append(out, &specv1.KeyValue{Key: k, Value: "false", Raw: true})
		default:
			out = append(out, &specv1.KeyValue{Key: k, Bare: true})
		}
	}
	return out
}

// optionPairs is optionize: arrays fan out, true is a bare flag, nil is "".
func optionPairs(opts *yaml11.Value) []*specv1.Option {
	if opts == nil || opts.Kind != yaml11.KindMap {
		return nil
	}
	var out []*specv1.Option
	add := func(k string, v *yaml11.Value) {
		if v.IsTrue() {
			out = append(out, &specv1.Option{Name: k, Bare: true})
			return
		}
		out = append(out, &specv1.Option{Name: k, Value: v.S()})
	}
	for _, k := range opts.Keys {
		v := opts.Map[k]
		if v != nil && v.Kind == yaml11.KindSeq {
			for _, e := range v.Seq {
				add(k, e)
			}
			continue
		}
		add(k, v)
	}
	return out
}

func loggingSpec(l *yaml11.Value) *specv1.Logging {
	if !l.Present() {
		return &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m"}}}
	}
	out := &specv1.Logging{}
	if d := l.Get("driver"); d != nil && !d.IsNull() {
		out.Driver = d.S()
	}
	if o := l.Get("options"); o != nil && o.Kind == yaml11.KindMap {
		out.Options = argPairs(o.Keys, o.Map)
	}
	return out
}

func (c *Config) resolveSecrets(keys []string) []*specv1.KeyValue {
	if c.opts.Secrets == nil {
		return nil
	}
	var out []*specv1.KeyValue
	for _, k := range keys {
		name, secret, ok := strings.Cut(k, ":")
		if !ok {
			secret = name
		}
		v, err := c.opts.Secrets.Secret(secret)
		if err != nil {
			continue
		}
		out = append(out, &specv1.KeyValue{Key: name, Value: v})
	}
	return out
}

// SecretEnv resolves the role's secret env for host, failing on a missing
// secret (the error names the secret, never a value).
func (c *Config) SecretEnv(role, host string) ([]*specv1.KeyValue, error) {
	r := c.Role(role)
	if r == nil {
		return nil, fmt.Errorf("%w: unknown role %s", ErrConfig, role)
	}
	if c.opts.Secrets == nil {
		return nil, fmt.Errorf("%w: no secrets resolver", ErrConfig)
	}
	var out []*specv1.KeyValue
	for _, k := range c.roleEnv(r, host).secrets {
		name, secret, ok := strings.Cut(k, ":")
		if !ok {
			secret = name
		}
		v, err := c.opts.Secrets.Secret(secret)
		if err != nil {
			return nil, err
		}
		out = append(out, &specv1.KeyValue{Key: name, Value: v})
	}
	return out, nil
}

// AppContainer is the container Kamal runs for role on host at the
// configured version.
func (c *Config) AppContainer(role, host string) *specv1.Container {
	r := c.Role(role)
	if r == nil {
		return nil
	}
	name := c.ContainerName(r.Name, "")
	env := []*specv1.KeyValue{
		{Key: "KAMAL_CONTAINER_NAME", Value: name},
		{Key: "KAMAL_VERSION", Value: c.Version},
		{Key: "KAMAL_HOST", Value: host},
	}
	if c.Destination != "" {
		env = append(env, &specv1.KeyValue{Key: "KAMAL_DESTINATION", Value: c.Destination})
	}
	e := c.roleEnv(r, host)
	env = append(env, argPairs(e.clearKeys, e.clear)...)
	var volumes []string
	if v := c.Raw.Get("volumes"); v != nil && v.Kind == yaml11.KindSeq {
		volumes = append(volumes, v.Strings()...)
	}
	if r.AssetPath != "" && r.RunningProxy {
		volumes = append(volumes, "$PWD/"+path.Join(c.AppDirectory(), "assets", "volumes", r.Name+"-"+c.Version)+":"+r.AssetPath)
	}
	labels := []*specv1.KeyValue{{Key: "service", Value: c.Service}, {Key: "role", Value: r.Name}}
	if c.Destination != "" {
		labels = append(labels, &specv1.KeyValue{Key: "destination", Value: c.Destination})
	} else {
		labels = append(labels, &specv1.KeyValue{Key: "destination", Bare: true})
	}
	// Custom labels can override the defaults (Hash#merge keeps the position).
	custom := argPairs(r.Labels.Keys, r.Labels.Map)
	for _, kv := range custom {
		replaced := false
		for i, l := range labels {
			if l.Key == kv.Key {
				labels[i] = kv
				replaced = true
			}
		}
		if !replaced {
			labels = append(labels, kv)
		}
	}
	restart := "unless-stopped"
	opts := r.Options
	if rp := opts.Get("restart"); rp != nil && !rp.IsNull() && !rp.IsFalse() {
		restart = rp.S()
		opts = opts.Clone()
		opts.Delete("restart")
	}
	assetPath := ""
	if r.AssetPath != "" && r.RunningProxy {
		assetPath = strings.SplitN(r.AssetPath, ":", 2)[0]
	}
	ct := &specv1.Container{
		AssetPath:   assetPath,
		Kind:        specv1.ContainerKind_CONTAINER_KIND_APP,
		Name:        name,
		Image:       c.Image(),
		Restart:     restart,
		Network:     "kamal",
		Hostname:    c.Hostname(host),
		Env:         env,
		EnvFile:     path.Join(c.EnvDirectory(), "roles", r.Name+".env"),
		SecretEnv:   c.resolveSecrets(e.secrets),
		SecretKeys:  e.secrets,
		Logging:     loggingSpec(r.Logging),
		Volumes:     volumes,
		Labels:      labels,
		Options:     optionPairs(opts),
		Service:     c.Service,
		Role:        r.Name,
		Destination: c.Destination,
		Version:     c.Version,
		Host:        host,
	}
	if r.Cmd != nil && !r.Cmd.IsNull() {
		ct.Cmd = r.Cmd.S()
	}
	if p := c.StopPolicy(role); p.GetHasTimeout() {
		ct.StopTimeout, ct.HasStopTimeout = p.GetTimeout(), true
	}
	return ct
}

func seconds(v *yaml11.Value) string {
	if v == nil || v.IsNull() || v.IsFalse() {
		return ""
	}
	if !v.Present() && !(v.Kind == yaml11.KindInt && v.Int == 0) {
		return ""
	}
	return v.S() + "s"
}

// proxyFlags formats kamal-proxy deploy options as Kamal's optionize(with: "=").
type flagList []string

func (f *flagList) add(name string, v any) {
	switch x := v.(type) {
	case nil:
	case bool:
		if x {
			*f = append(*f, "--"+name)
		} else {
			*f = append(*f, "--"+name+"="+quote("false"))
		}
	case string:
		*f = append(*f, "--"+name+"="+quote(x))
	case []string:
		for _, s := range x {
			*f = append(*f, "--"+name+"="+quote(s))
		}
	case *yaml11.Value:
		if x == nil || x.IsNull() {
			return
		}
		switch x.Kind {
		case yaml11.KindBool:
			f.add(name, x.Bool)
		case yaml11.KindSeq:
			for _, e := range x.Seq {
				f.add(name, e)
			}
		default:
			f.add(name, x.S())
		}
	}
}

// quote is Kamal's escape_shell_value (kept here to avoid an import cycle
// with internal/spec, which renders it identically).
func quote(s string) string { return spec.EscapeShellValue(s) }

func (c *Config) proxyDeploy(service string, proxy *yaml11.Value, role string) *specv1.ProxyDeploy {
	var f flagList
	if hs := proxyHosts(proxy); len(hs) > 0 {
		f.add("host", hs)
	}
	if proxy.Get("ssl").Truthy() {
		f.add("tls", true)
	}
	if customSSL(proxy) && role != "" {
		dir := path.Join("/home/kamal-proxy/.apps-config", c.ServiceAndDestination(), "tls", role)
		f.add("tls-certificate-path", dir+"/cert.pem")
		f.add("tls-private-key-path", dir+"/key.pem")
	}
	f.add("deploy-timeout", fmt.Sprintf("%ds", c.DeployTimeout))
	f.add("drain-timeout", fmt.Sprintf("%ds", c.DrainTimeout))
	hc := proxy.Get("healthcheck")
	if s := seconds(hc.Get("interval")); s != "" {
		f.add("health-check-interval", s)
	}
	if s := seconds(hc.Get("timeout")); s != "" {
		f.add("health-check-timeout", s)
	}
	f.add("health-check-path", hc.Get("path"))
	if s := seconds(proxy.Get("response_timeout")); s != "" {
		f.add("target-timeout", s)
	}
	buf := proxy.Get("buffering")
	if buf == nil || buf.Kind != yaml11.KindMap {
		f.add("buffer-requests", true)
		f.add("buffer-responses", true)
	} else {
		for _, kv := range [][2]string{{"buffer-requests", "requests"}, {"buffer-responses", "responses"}} {
			if buf.Has(kv[1]) {
				f.add(kv[0], buf.Get(kv[1]))
			} else {
				f.add(kv[0], true)
			}
		}
	}
	f.add("buffer-memory", buf.Get("memory"))
	f.add("max-request-body", buf.Get("max_request_body"))
	f.add("max-response-body", buf.Get("max_response_body"))
	if pp := pathPrefixes(proxy); len(pp) > 0 {
		f.add("path-prefix", pp)
	}
	f.add("strip-path-prefix", proxy.Get("strip_path_prefix"))
	f.add("forward-headers", proxy.Get("forward_headers"))
	f.add("tls-redirect", proxy.Get("ssl_redirect"))
	if rh := proxy.Get("logging").Get("request_headers"); rh != nil && !rh.IsNull() {
		f.add("log-request-header", rh)
	} else {
		f.add("log-request-header", []string{"Cache-Control", "Last-Modified", "User-Agent"})
	}
	f.add("log-response-header", proxy.Get("logging").Get("response_headers"))
	if c.ErrorPagesPath != "" {
		f.add("error-pages", path.Join("/home/kamal-proxy/.apps-config", c.ServiceAndDestination(), "error_pages", c.Version))
	}
	port := proxy.Get("app_port").IntOr(80)
	return &specv1.ProxyDeploy{
		Service:       service,
		AppPort:       uint32(port),
		Flags:         f,
		DeployTimeout: uint32(c.DeployTimeout),
		DrainTimeout:  uint32(c.DrainTimeout),
	}
}

// ProxyDeploy is the kamal-proxy deploy request for role, or nil when the
// role does not run behind the proxy.
func (c *Config) ProxyDeploy(role string) *specv1.ProxyDeploy {
	r := c.Role(role)
	if r == nil || !r.RunningProxy {
		return nil
	}
	pd := c.proxyDeploy(c.ContainerPrefix(r.Name), r.Proxy, r.Name)
	if customSSL(r.Proxy) && c.opts.Secrets != nil {
		ssl := r.Proxy.Get("ssl")
		dir := path.Join(c.ServiceAndDestination(), "tls", r.Name)
		if cert, err := c.opts.Secrets.Secret(ssl.Get("certificate_pem").S()); err == nil {
			pd.Files = append(pd.Files, &specv1.File{Path: dir + "/cert.pem", Content: []byte(cert), Mode: 0o644})
		}
		if key, err := c.opts.Secrets.Secret(ssl.Get("private_key_pem").S()); err == nil {
			pd.Files = append(pd.Files, &specv1.File{Path: dir + "/key.pem", Content: []byte(key), Mode: 0o644})
		}
	}
	return pd
}

// AccessoryProxyDeploy is the kamal-proxy deploy request for an accessory
// that sets proxy:, or nil.
func (c *Config) AccessoryProxyDeploy(name string) *specv1.ProxyDeploy {
	a := c.Accessory(name)
	if a == nil || a.Proxy == nil {
		return nil
	}
	return c.proxyDeploy(a.ServiceName, a.Proxy, "")
}

// StopPolicy is how Kamal stops an old container of role: `-t stop_timeout`
// when set, else drain_timeout for roles without the proxy and Docker's
// default for proxy roles (kamal-proxy has already drained them).
func (c *Config) StopPolicy(role string) *specv1.StopPolicy {
	r := c.Role(role)
	if r == nil {
		return nil
	}
	if r.StopTimeout != nil {
		return &specv1.StopPolicy{Timeout: uint32(*r.StopTimeout), HasTimeout: true}
	}
	if r.RunningProxy {
		return &specv1.StopPolicy{}
	}
	return &specv1.StopPolicy{Timeout: uint32(c.DrainTimeout), HasTimeout: true}
}

// Readiness is how Kamal waits for a role without the proxy.
func (c *Config) Readiness(role string) *specv1.Readiness {
	return &specv1.Readiness{DeployTimeout: uint32(c.DeployTimeout), ReadinessDelay: uint32(c.ReadinessDelay)}
}

// RegistryAuth resolves the registry credentials (nil registry: Docker Hub).
func (c *Config) RegistryAuth() (*specv1.RegistryAuth, error) {
	return c.registryAuth(c.Registry)
}

func (c *Config) registryAuth(r Registry) (*specv1.RegistryAuth, error) {
	out := &specv1.RegistryAuth{Server: r.Server, Username: r.Username, Password: r.Password}
	for _, p := range []struct {
		name string
		dst  *string
	}{{r.UsernameSecret, &out.Username}, {r.PasswordSecret, &out.Password}} {
		if p.name == "" {
			continue
		}
		if c.opts.Secrets == nil {
			return nil, fmt.Errorf("%w: secret %s needed for the registry but no secrets are loaded", ErrConfig, p.name)
		}
		v, err := c.opts.Secrets.Secret(p.name)
		if err != nil {
			return nil, err
		}
		*p.dst = v
	}
	return out, nil
}

// ProxyBoot is how kamal-proxy is booted on host.
func (c *Config) ProxyBoot(host string) *specv1.ProxyBoot {
	vols := []string{"kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy", "$PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config"}
	run := c.proxyRun(host)
	if run == nil {
		return &specv1.ProxyBoot{Legacy: true, Container: &specv1.Container{
			Kind: specv1.ContainerKind_CONTAINER_KIND_PROXY, Name: "kamal-proxy", Network: "kamal", Restart: "unless-stopped",
			Image: "basecamp/kamal-proxy:v0.9.2", Volumes: vols, Publish: []string{"80:80", "443:443"},
			Logging: &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m", Raw: true}}},
		}}
	}
	ct := &specv1.Container{Kind: specv1.ContainerKind_CONTAINER_KIND_PROXY, Name: "kamal-proxy", Network: "kamal", Restart: "unless-stopped", Volumes: vols, Host: host}
	publish := !run.Has("publish") || run.Get("publish").Truthy()
	if publish {
		httpPort, httpsPort := "80", "443"
		if run.Has("http_port") {
			httpPort = run.Get("http_port").S()
		}
		if run.Has("https_port") {
			httpsPort = run.Get("https_port").S()
		}
		ips := []string{""}
		if b := run.Get("bind_ips"); b != nil && b.Kind == yaml11.KindSeq {
			ips = b.Strings()
		}
		for _, ip := range ips {
			pre := ""
			if ip != "" {
				if strings.Contains(ip, ":") && !strings.HasPrefix(ip, "[") {
					ip = "[" + ip + "]"
				}
				pre = ip + ":"
			}
			ct.Publish = append(ct.Publish, pre+httpPort+":80", pre+httpsPort+":443")
		}
	}
	logSize := "10m"
	if run.Has("log_max_size") {
		logSize = run.Get("log_max_size").S()
	}
	ct.Logging = &specv1.Logging{}
	if strings.TrimSpace(logSize) != "" {
		ct.Logging.Options = []*specv1.KeyValue{{Key: "max-size", Value: logSize, Raw: true}}
	}
	if mp := run.Get("metrics_port"); mp.Present() {
		ct.Expose = append(ct.Expose, mp.S())
	}
	ct.Options = optionPairs(run.Get("options"))
	repo := "basecamp/kamal-proxy"
	if r := run.Get("repository"); r != nil && !r.IsNull() {
		repo = r.S()
	}
	if r := run.Get("registry"); r != nil && r.Kind == yaml11.KindString {
		repo = r.Str + "/" + repo
	}
	version := "v0.9.2"
	if v := run.Get("version"); v != nil && !v.IsNull() {
		version = v.S()
	}
	ct.Image = repo + ":" + version
	cmd := []string{"kamal-proxy", "run"}
	if d := run.Get("debug"); d.Truthy() {
		if d.IsTrue() {
			cmd = append(cmd, "--debug")
		} else {
			cmd = append(cmd, "--debug", quote(d.S()))
		}
	}
	if mp := run.Get("metrics_port"); mp != nil && !mp.IsNull() {
		cmd = append(cmd, "--metrics-port", quote(mp.S()))
	}
	ct.Cmd = strings.Join(cmd, " ")
	return &specv1.ProxyBoot{Container: ct}
}

// AccessoryContainer is the container Kamal runs for accessory name; with a
// non-empty host it also carries KAMAL_HOST as Kamal's boot does.
func (c *Config) AccessoryContainer(name, host string) *specv1.Container {
	a := c.Accessory(name)
	if a == nil {
		return nil
	}
	cfg := a.raw
	ct := &specv1.Container{
		Kind:       specv1.ContainerKind_CONTAINER_KIND_ACCESSORY,
		Name:       a.ServiceName,
		Image:      a.Image,
		Restart:    "unless-stopped",
		Network:    "kamal",
		Logging:    loggingSpec(c.Raw.Get("logging")),
		EnvFile:    path.Join(c.EnvDirectory(), "accessories", a.Name+".env"),
		SecretKeys: a.env.secrets,
		SecretEnv:  c.resolveSecrets(a.env.secrets),
		Service:    a.ServiceName,
		Host:       host,
	}
	if n := cfg.Get("network"); n != nil && n.Kind == yaml11.KindString {
		ct.Network = n.Str
	}
	if p := cfg.Get("port"); p != nil && !p.IsNull() {
		s := p.S()
		if !strings.Contains(s, ":") {
			s = s + ":" + s
		}
		ct.Publish = []string{s}
	}
	if host != "" {
		ct.Env = append(ct.Env, &specv1.KeyValue{Key: "KAMAL_HOST", Value: host})
	}
	ct.Env = append(ct.Env, argPairs(a.env.clearKeys, a.env.clear)...)
	if v := cfg.Get("volumes"); v != nil && v.Kind == yaml11.KindSeq {
		ct.Volumes = append(ct.Volumes, v.Strings()...)
	}
	dockerVol := func(hostPath, containerPath, options string) string {
		hp := hostPath
		if !strings.HasPrefix(hp, "/") {
			hp = "$PWD/" + hp
		}
		s := hp + ":" + containerPath
		if options != "" {
			s += ":" + options
		}
		return s
	}
	type pathCfg struct{ local, remote, options, mode, owner string }
	parse := func(v *yaml11.Value) pathCfg {
		if v.Kind == yaml11.KindMap {
			return pathCfg{v.Get("local").S(), v.Get("remote").S(), v.Get("options").S(), v.Get("mode").S(), v.Get("owner").S()}
		}
		parts := strings.SplitN(v.S(), ":", 3)
		p := pathCfg{local: parts[0]}
		if len(parts) > 1 {
			p.remote = parts[1]
		}
		if len(parts) > 2 {
			p.options = parts[2]
		}
		return p
	}
	if fs := cfg.Get("files"); fs != nil && fs.Kind == yaml11.KindSeq {
		for _, f := range fs.Seq {
			p := parse(f)
			ct.Volumes = append(ct.Volumes, dockerVol(a.ServiceName+p.remote, p.remote, p.options))
			mode := uint32(0o755)
			if p.mode != "" {
				fmt.Sscanf(p.mode, "%o", &mode)
			}
			ct.Files = append(ct.Files, &specv1.File{Path: a.ServiceName + p.remote, Mode: mode, Owner: p.owner})
		}
	}
	if ds := cfg.Get("directories"); ds != nil && ds.Kind == yaml11.KindSeq {
		for _, d := range ds.Seq {
			p := parse(d)
			hp := p.local
			if !strings.HasPrefix(hp, "/") {
				hp = path.Join(a.ServiceName, hp)
			}
			ct.Volumes = append(ct.Volumes, dockerVol(hp, p.remote, p.options))
			ct.Directories = append(ct.Directories, hp)
		}
	}
	ct.Labels = []*specv1.KeyValue{{Key: "service", Value: a.ServiceName}}
	if l := cfg.Get("labels"); l != nil && l.Kind == yaml11.KindMap {
		for _, kv := range argPairs(l.Keys, l.Map) {
			if kv.Key == "service" {
				ct.Labels[0] = kv
				continue
			}
			ct.Labels = append(ct.Labels, kv)
		}
	}
	ct.Options = optionPairs(cfg.Get("options"))
	if cmd := cfg.Get("cmd"); cmd != nil && !cmd.IsNull() {
		ct.Cmd = cmd.S()
	}
	return ct
}

// AccessoryRegistryAuth resolves an accessory's own registry, or nil.
func (c *Config) AccessoryRegistryAuth(name string) (*specv1.RegistryAuth, error) {
	a := c.Accessory(name)
	if a == nil || a.Registry == nil {
		return nil, nil
	}
	return c.registryAuth(*a.Registry)
}

// WithVersion returns a copy of the configuration for another version
// (rollback, stopping an old container).
func (c *Config) WithVersion(version string) *Config {
	cp := *c
	cp.Version = version
	return &cp
}

// EnvFile is the role's env file for host as Kamal writes it
// (.kamal/apps/<svc>/env/roles/<role>.env): the resolved secrets. It fails,
// naming the secret, when one is missing.
func (c *Config) EnvFile(role, host string) (string, error) {
	kvs, err := c.SecretEnv(role, host)
	if err != nil {
		return "", err
	}
	return spec.EnvFile(kvs), nil
}

// AccessoryEnvFile is the accessory's env file (resolved secrets).
func (c *Config) AccessoryEnvFile(name string) (string, error) {
	a := c.Accessory(name)
	if a == nil {
		return "", fmt.Errorf("%w: unknown accessory %s", ErrConfig, name)
	}
	if c.opts.Secrets == nil {
		return "", fmt.Errorf("%w: no secrets resolver", ErrConfig)
	}
	var kvs []*specv1.KeyValue
	for _, k := range a.env.secrets {
		n, secret, ok := strings.Cut(k, ":")
		if !ok {
			secret = n
		}
		v, err := c.opts.Secrets.Secret(secret)
		if err != nil {
			return "", err
		}
		kvs = append(kvs, &specv1.KeyValue{Key: n, Value: v})
	}
	return spec.EnvFile(kvs), nil
}

// readAccessoryFile reads an accessory's local file, rendering .erb files
// with the accessory's env loaded, as Kamal does at boot.
func (c *Config) readAccessoryFile(a *Accessory, local string) ([]byte, error) {
	p := local
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.opts.Dir, local)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: Missing file: %s", ErrConfig, local)
	}
	if !strings.HasSuffix(local, ".erb") {
		return data, nil
	}
	env := c.opts.environ()
	for _, k := range a.env.clearKeys {
		env[k] = a.env.clear[k].S()
	}
	for _, k := range a.env.secrets {
		n, secret, ok := strings.Cut(k, ":")
		if !ok {
			secret = n
		}
		if c.opts.Secrets == nil {
			return nil, fmt.Errorf("%w: %s needs secret %s but no secrets are loaded", ErrConfig, local, secret)
		}
		v, err := c.opts.Secrets.Secret(secret)
		if err != nil {
			return nil, err
		}
		env[n] = v
	}
	out, _, err := c.opts.render(local, data, env)
	return out, err
}

// AccessoryFiles are the accessory's files with their contents (.erb files
// rendered with the accessory env), failing on a missing local file.
func (c *Config) AccessoryFiles(name string) ([]*specv1.File, error) {
	a := c.Accessory(name)
	if a == nil {
		return nil, fmt.Errorf("%w: unknown accessory %s", ErrConfig, name)
	}
	ct := c.AccessoryContainer(name, "")
	fs := a.raw.Get("files")
	if fs == nil || fs.Kind != yaml11.KindSeq {
		return nil, nil
	}
	for i, f := range fs.Seq {
		local := f.Get("local").S()
		if f.Kind != yaml11.KindMap {
			local = strings.SplitN(f.S(), ":", 2)[0]
		}
		data, err := c.readAccessoryFile(a, local)
		if err != nil {
			return nil, err
		}
		ct.Files[i].Content = data
	}
	return ct.Files, nil
}
