package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protodelim"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func skipUnlessE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("KCTL_E2E") != "1" && testing.Short() {
		t.Skip("end-to-end: set KCTL_E2E=1 or run without -short")
	}
}

// binaries builds controller, agent and kctl once per test binary.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kctl-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/kctl-dev/kctl/cmd/controller", "github.com/kctl-dev/kctl/cmd/agent", "github.com/kctl-dev/kctl/cmd/kctl")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running binary.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
	err  error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// env is one end-to-end setup: binaries, a work dir, the admin credentials.
type env struct {
	t     *testing.T
	bin   string
	dir   string
	creds string
	procs []*proc
	// agent is the deploy tests' (first) agent name (startAgent).
	agent string
	// hosts are every agent startAgents started, in order.
	hosts []string
}

func newEnv(t *testing.T) *env {
	skipUnlessE2E(t)
	e := &env{t: t, bin: binaries(t), dir: t.TempDir()}
	t.Cleanup(func() {
		for _, p := range e.procs {
			p.stop()
		}
		if t.Failed() {
			for _, p := range e.procs {
				out := p.output()
				if len(out) > 4000 {
					out = out[len(out)-4000:]
				}
				t.Logf("--- %s log (tail) ---\n%s", p.name, out)
			}
		}
	})
	return e
}

func (e *env) start(name, bin string, args ...string) *proc {
	e.t.Helper()
	p := &proc{name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(e.bin, bin), args...)
	p.cmd.Dir = e.dir
	w := lockedWriter{p.mu, p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	e.procs = append(e.procs, p)
	return p
}

// stop sends SIGTERM and waits (SIGKILL after 10s).
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

func (p *proc) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// kctl runs kctl with the admin credentials and returns stdout.
func (e *env) kctl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(e.bin, "kctl"), args...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "KCTL_CREDENTIALS="+e.creds)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (e *env) mustKctl(args ...string) string {
	e.t.Helper()
	out, err := e.kctl(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

type clusterStatus struct {
	Leader string `json:"leader"`
	Nodes  []struct {
		Name, Address, State string
		Voter                bool
	} `json:"nodes"`
}

type agentRow struct {
	Name, Status, Controller, Version string
	LastSeen                          string `json:"last_seen"`
}

func (e *env) status() (clusterStatus, error) {
	var st clusterStatus
	out, err := e.kctl("cluster", "status", "-o", "json")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(out), &st)
}

func (e *env) agents() (map[string]agentRow, error) {
	out, err := e.kctl("agents", "-o", "json")
	if err != nil {
		return nil, err
	}
	var rows []agentRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return nil, err
	}
	m := map[string]agentRow{}
	for _, r := range rows {
		m[r.Name] = r
	}
	return m, nil
}

type ctl struct {
	name, api, raft, dir string
	p                    *proc
}

// startCluster brings up n controllers with the real binaries.
func (e *env) startCluster(n int) []*ctl {
	t := e.t
	var cs []*ctl
	for i := range n {
		name := fmt.Sprintf("c%d", i+1)
		cs = append(cs, &ctl{name: name, api: freePort(t), raft: freePort(t), dir: filepath.Join(e.dir, name)})
	}
	c1 := cs[0]
	c1.p = e.start(c1.name, "controller", "run", "--name", c1.name, "--data-dir", c1.dir, "--listen", c1.api, "--raft-listen", c1.raft, "--init", "--heartbeat-interval", "1s")
	e.creds = filepath.Join(c1.dir, "admin.kctl.yaml")
	waitFor(t, 30*time.Second, "admin credentials", func() error {
		_, err := os.Stat(e.creds)
		return err
	})
	if fi, _ := os.Stat(e.creds); fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin credentials mode = %v, want 0600", fi.Mode().Perm())
	}
	if n > 1 {
		tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "controller", "--uses", fmt.Sprint(n-1)))
		for _, c := range cs[1:] {
			c.p = e.start(c.name, "controller", "run", "--name", c.name, "--data-dir", c.dir, "--listen", c.api, "--raft-listen", c.raft, "--join", c1.api, "--token", tok, "--heartbeat-interval", "1s")
		}
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("%d voters", n), func() error {
		st, err := e.status()
		if err != nil {
			return err
		}
		ok := 0
		for _, nd := range st.Nodes {
			if nd.Voter && (nd.State == "leader" || nd.State == "follower") {
				ok++
			}
		}
		if ok != n || st.Leader == "" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	return cs
}

// journalCount counts the results an agent journaled for a command id: the
// agent journals a command once per execution.
func journalCount(t *testing.T, path, id string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	n := 0
	for {
		var cr agentv1.CommandResult
		if err := protodelim.UnmarshalFrom(r, &cr); err != nil {
			return n
		}
		if cr.GetId() == id {
			n++
		}
	}
}

func TestE2E_FailoverWithRealBinaries(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(3)
	st, _ := e.status()
	var leader *ctl
	for _, c := range cs {
		if c.name == st.Leader {
			leader = c
		}
	}
	if leader == nil {
		t.Fatalf("no leader in %+v", st)
	}
	var others []string
	for _, c := range cs {
		if c != leader {
			others = append(others, c.api)
		}
	}
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "agent", "--uses", "2", "--ttl", "10m"))
	// web-1 is pinned to the leader first; web-2 to a follower.
	a1dir, a2dir := filepath.Join(e.dir, "a1"), filepath.Join(e.dir, "a2")
	e.start("web-1", "agent", "run", "--name", "web-1", "--data-dir", a1dir, "--controller", leader.api+","+strings.Join(others, ","), "--token", tok)
	web2 := e.start("web-2", "agent", "run", "--name", "web-2", "--data-dir", a2dir, "--controller", others[0], "--token", tok)
	waitFor(t, 30*time.Second, "both agents connected", func() error {
		as, err := e.agents()
		if err != nil {
			return err
		}
		if as["web-1"].Status != "connected" || as["web-2"].Status != "connected" {
			return fmt.Errorf("agents %+v", as)
		}
		if as["web-1"].Controller != leader.name {
			return fmt.Errorf("web-1 on %s, want the leader %s", as["web-1"].Controller, leader.name)
		}
		return nil
	})

	// kill -9 the leader, and send a command to web-1 (whose session the
	// leader held) while the cluster fails over.
	leader.p.kill9()
	killedAt := time.Now()
	out, err := e.kctl("agents", "ping", "web-1", "--payload", "during-failover", "--wait", "60s")
	if err != nil {
		t.Fatalf("command during failover: %v", err)
	}
	t.Logf("%s (%.1fs after the kill)", strings.TrimSpace(out), time.Since(killedAt).Seconds())
	fields := strings.Fields(out)
	if len(fields) < 4 || fields[1] != "answered" {
		t.Fatalf("unexpected ping output %q", out)
	}
	id := fields[3]

	waitFor(t, 30*time.Second, "a new leader and both agents connected again", func() error {
		st, err := e.status()
		if err != nil {
			return err
		}
		if st.Leader == "" || st.Leader == leader.name {
			return fmt.Errorf("leader %q", st.Leader)
		}
		as, err := e.agents()
		if err != nil {
			return err
		}
		for _, n := range []string{"web-1", "web-2"} {
			if as[n].Status != "connected" || as[n].Controller == leader.name {
				return fmt.Errorf("%s: %+v", n, as[n])
			}
		}
		return nil
	})
	t.Logf("new leader and both agents connected %.1fs after the kill", time.Since(killedAt).Seconds())
	if n := journalCount(t, filepath.Join(a1dir, "journal.bin"), id); n != 1 {
		t.Fatalf("web-1 ran command %s %d times, want once", id, n)
	}
	// Removing an agent revokes it: its process stops at its next message
	// and cannot come back.
	e.mustKctl("agents", "remove", "web-2")
	select {
	case <-web2.done:
	case <-time.After(20 * time.Second):
		t.Fatal("web-2 still runs 20s after kctl agents remove")
	}
	if !strings.Contains(web2.output(), "revoked") {
		t.Fatalf("web-2 output lacks the revocation: %s", web2.output())
	}
	out2, err := e.runBin(20*time.Second, "agent", "run", "--name", "web-2", "--data-dir", a2dir, "--controller", others[0])
	if err == nil || !strings.Contains(out2, "revoked") {
		t.Fatalf("restarting a removed agent = %v, %q; want refused as revoked", err, out2)
	}

	// A survivor shuts down cleanly on SIGTERM.
	for _, c := range cs {
		if c != leader {
			if err := c.p.stop(); err != nil {
				t.Fatalf("%s exit after SIGTERM = %v, want 0", c.name, err)
			}
			break
		}
	}
}

// runBin runs a binary to completion with a deadline and returns its exit
// error and stderr.
func (e *env) runBin(timeout time.Duration, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, bin), args...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "KCTL_CREDENTIALS="+e.creds)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		return errb.String(), errors.New("timed out: hung")
	}
	return errb.String(), err
}

func TestE2E_BadInputFailsWithOneLine(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(1)
	c1 := cs[0]
	agentTok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "agent"))
	dead := freePort(t)
	cases := []struct {
		name string
		bin  string
		args []string
		want string
	}{
		{"init on an initialized data dir", "controller", []string{"run", "--name", "c1", "--data-dir", c1.dir, "--listen", freePort(t), "--raft-listen", freePort(t), "--init"}, "already holds"},
		{"restart without state", "controller", []string{"run", "--name", "cx", "--data-dir", filepath.Join(e.dir, "nothing"), "--listen", freePort(t), "--raft-listen", freePort(t)}, "--init"},
		{"port in use", "controller", []string{"run", "--name", "cy", "--data-dir", filepath.Join(e.dir, "cy"), "--listen", c1.api, "--raft-listen", freePort(t), "--init"}, "already in use"},
		{"wrong token", "agent", []string{"run", "--name", "w", "--data-dir", filepath.Join(e.dir, "w"), "--controller", c1.api, "--token", agentTok[:len(agentTok)-3] + "aaa"}, "unknown or revoked token"},
		{"malformed token", "agent", []string{"run", "--name", "w", "--data-dir", filepath.Join(e.dir, "w2"), "--controller", c1.api, "--token", "nope"}, "malformed"},
		{"unreachable controller", "agent", []string{"run", "--name", "w", "--data-dir", filepath.Join(e.dir, "w3"), "--controller", dead, "--token", agentTok}, "no controller reachable"},
		{"kctl with no credentials", "kctl", []string{"--credentials", filepath.Join(e.dir, "none.yaml"), "agents"}, "kctl login"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stderr, err := e.runBin(30*time.Second, tc.bin, tc.args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit = %v, want status 1 (stderr %q)", err, stderr)
			}
			last := strings.TrimSpace(stderr)
			if i := strings.LastIndex(last, "\n"); i >= 0 && tc.bin != "kctl" {
				last = last[i+1:] // daemons log before failing; the error is the last line
			}
			if strings.Contains(last, "\n") || !strings.Contains(last, tc.want) || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("stderr = %q, want one line containing %q", stderr, tc.want)
			}
		})
	}
}
