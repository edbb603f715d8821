package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protodelim"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// env is one end-to-end setup: binaries, a work dir, the admin credentials.
type env struct {
	t     *testing.T
	bin   string
	dir   string
	creds string
	// ctls are the controllers startCluster started.
	ctls []*ctl
	// agent is the deploy tests' (first) agent name (startAgent).
	agent string
	// hosts are every agent startAgents started, in order.
	hosts []string
	// production starts agents without --shared-engine, so they use
	// Kamal's names (production_test.go).
	production bool
	// agentArgs are extra `agent run` flags for the i-th agent startAgents
	// starts.
	agentArgs [][]string
	// procs are every process start started, in order.
	procs []*testenv.Proc
	// controllerArgs are extra `controller run` flags startCluster passes
	// to every controller (keys_test.go: --autolock).
	controllerArgs []string
}

// newEnv gates the test (testenv.SkipShort), marks it parallel (each env has
// its own ports, data directories and uniquely named agents and containers)
// and returns an env with the binaries built.
func newEnv(t *testing.T) *env {
	testenv.SkipShort(t)
	t.Parallel()
	return &env{t: t, bin: testenv.Binaries(t), dir: t.TempDir()}
}

// start starts one of the binaries in the env's directory; it is stopped in
// cleanup.
func (e *env) start(name, bin string, args ...string) *testenv.Proc {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(e.bin, bin), args...)
	cmd.Dir = e.dir
	p := testenv.Start(e.t, name, cmd)
	e.procs = append(e.procs, p)
	return p
}

// kctl runs kctl in the env's directory with the admin credentials and
// returns stdout.
func (e *env) kctl(args ...string) (string, error) { return e.kctlIn(e.dir, args...) }

func (e *env) mustKctl(args ...string) string {
	e.t.Helper()
	out, err := e.kctl(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

type clusterStatus struct {
	Leader   string   `json:"leader"`
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems"`
	Nodes    []struct {
		Name, Address, State, Version, Problem string
		Voter                                  bool
		AppliedIndex                           uint64 `json:"applied_index"`
		Lag                                    uint64 `json:"lag"`
	} `json:"nodes"`
}

type agentRow struct {
	Name, Status, Controller, Version string
	LastSeen                          string `json:"last_seen"`
}

func (e *env) status() (clusterStatus, error) {
	var st clusterStatus
	out, err := e.kctl("cluster", "status", "-o", "json")
	// An unhealthy cluster exits 1 after printing its status.
	if jerr := json.Unmarshal([]byte(out), &st); jerr == nil && st.Nodes != nil {
		return st, nil
	}
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
	p                    *testenv.Proc
}

// startCluster brings up n controllers with the real binaries.
func (e *env) startCluster(n int) []*ctl {
	t := e.t
	var cs []*ctl
	for i := range n {
		name := fmt.Sprintf("c%d", i+1)
		cs = append(cs, &ctl{name: name, api: testenv.FreeAddr(t), raft: testenv.FreeAddr(t), dir: filepath.Join(e.dir, name)})
	}
	e.ctls = cs
	c1 := cs[0]
	c1.p = e.start(c1.name, "controller", append([]string{"run", "--name", c1.name, "--data-dir", c1.dir, "--listen", c1.api, "--raft-listen", c1.raft, "--init", "--heartbeat-interval", "1s"}, e.controllerArgs...)...)
	e.creds = filepath.Join(c1.dir, "admin.kctl.yaml")
	testenv.WaitFor(t, 30*time.Second, func() error {
		_, err := os.Stat(e.creds)
		return err
	})
	if fi, _ := os.Stat(e.creds); fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin credentials mode = %v, want 0600", fi.Mode().Perm())
	}
	if n > 1 {
		tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "controller", "--uses", fmt.Sprint(n-1)))
		for _, c := range cs[1:] {
			c.p = e.start(c.name, "controller", append([]string{"run", "--name", c.name, "--data-dir", c.dir, "--listen", c.api, "--raft-listen", c.raft, "--join", c1.api, "--token", tok, "--heartbeat-interval", "1s"}, e.controllerArgs...)...)
		}
	}
	testenv.WaitFor(t, 60*time.Second, func() error {
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
			return fmt.Errorf("%d of %d voters up, status %+v", ok, n, st)
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
	testenv.WaitFor(t, 30*time.Second, func() error { // both agents connected
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
	leader.p.Kill()
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

	testenv.WaitFor(t, 30*time.Second, func() error { // a new leader, both agents connected again
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
	case <-web2.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("web-2 still runs 20s after kctl agents remove")
	}
	if !strings.Contains(web2.Output(), "revoked") {
		t.Fatalf("web-2 output lacks the revocation: %s", web2.Output())
	}
	out2, err := e.runBin(20*time.Second, "agent", "run", "--name", "web-2", "--data-dir", a2dir, "--controller", others[0])
	if err == nil || !strings.Contains(out2, "revoked") {
		t.Fatalf("restarting a removed agent = %v, %q; want refused as revoked", err, out2)
	}

	// A survivor shuts down cleanly on SIGTERM.
	for _, c := range cs {
		if c != leader {
			if err := c.p.Stop(); err != nil {
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
	dead := testenv.FreeAddr(t)
	cases := []struct {
		name string
		bin  string
		args []string
		want string
	}{
		{"init on an initialized data dir", "controller", []string{"run", "--name", "c1", "--data-dir", c1.dir, "--listen", testenv.FreeAddr(t), "--raft-listen", testenv.FreeAddr(t), "--init"}, "already holds"},
		{"restart without state", "controller", []string{"run", "--name", "cx", "--data-dir", filepath.Join(e.dir, "nothing"), "--listen", testenv.FreeAddr(t), "--raft-listen", testenv.FreeAddr(t)}, "--init"},
		{"port in use", "controller", []string{"run", "--name", "cy", "--data-dir", filepath.Join(e.dir, "cy"), "--listen", c1.api, "--raft-listen", testenv.FreeAddr(t), "--init"}, "already in use"},
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
