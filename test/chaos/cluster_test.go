package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// node is one controller: its namespace, its data directory and the
// running process (nil while killed).
type node struct {
	name    string
	net     *netNode
	dataDir string
	api     string
	args    []string
	log     string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// cluster is the controllers of one scenario.
type cluster struct {
	t     *testing.T
	bin   string
	dir   string // artifacts
	net   *network
	nodes []*node
	creds string
}

// start starts the node's controller inside its namespace, appending its
// output to its log.
func (c *cluster) start(nd *node) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return nil
	}
	f, err := os.OpenFile(nd.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== chaos: start %s at %s\n", nd.name, time.Now().Format(time.RFC3339Nano))
	args := append([]string{"netns", "exec", nd.net.ns, filepath.Join(c.bin, testenv.Controller)}, nd.args...)
	cmd := exec.Command("ip", args...) // ip netns exec execs the controller: same pid
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	nd.cmd, nd.done, nd.paused = cmd, done, false
	return nil
}

// kill sends SIGKILL to the node's process group and waits for it.
func (c *cluster) kill(nd *node) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return
	}
	_ = syscall.Kill(-nd.cmd.Process.Pid, syscall.SIGKILL)
	<-nd.done
	nd.cmd, nd.paused = nil, false
}

// signal sends sig (SIGSTOP, SIGCONT) to the running node.
func (c *cluster) signal(nd *node, sig syscall.Signal) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return
	}
	_ = syscall.Kill(-nd.cmd.Process.Pid, sig)
	nd.paused = sig == syscall.SIGSTOP
}

// running reports whether the node's process is up (not killed, not exited).
func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return false
	}
	select {
	case <-nd.done:
		return false
	default:
		return true
	}
}

// newCluster brings up n controllers, each in its own namespace, and waits
// until all are voters with a leader.
func newCluster(t *testing.T, bin, dir string, n int) *cluster {
	t.Helper()
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("c%d", i+1))
	}
	c := &cluster{t: t, bin: bin, dir: dir, net: newNetwork(t, names...)}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.signal(nd, syscall.SIGCONT)
			c.kill(nd)
		}
	})
	for _, name := range names {
		nn := c.net.node(name)
		nd := &node{name: name, net: nn, dataDir: filepath.Join(dir, name), api: nn.ip + ":7443", log: filepath.Join(dir, name+".log")}
		nd.args = []string{"run", "--name", name, "--data-dir", nd.dataDir, "--listen", nd.api, "--raft-listen", nn.ip + ":7444", "--resume"}
		c.nodes = append(c.nodes, nd)
	}
	c1 := c.nodes[0]
	c1.args = append(c1.args, "--init")
	if err := c.start(c1); err != nil {
		t.Fatal(err)
	}
	c.creds = filepath.Join(c1.dataDir, "admin.kctl.yaml")
	testenv.WaitFor(t, 60*time.Second, func() error {
		_, err := os.Stat(c.creds)
		return err
	})
	if n > 1 {
		out, err := c.kctl(30*time.Second, "token", "create", "--role", "controller", "--uses", fmt.Sprint(n-1))
		if err != nil {
			t.Fatal(err)
		}
		tok := filepath.Join(dir, "controller.token")
		if err := os.WriteFile(tok, []byte(strings.TrimSpace(out)), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, nd := range c.nodes[1:] {
			nd.args = append(nd.args, "--join", c1.api, "--token-file", tok)
			if err := c.start(nd); err != nil {
				t.Fatal(err)
			}
		}
	}
	// kctl on the host may ask any node, not only c1.
	f, err := ctlclient.LoadFile(c.creds)
	if err != nil {
		t.Fatal(err)
	}
	f.Controllers = c.addrs()
	c.creds = filepath.Join(dir, "admin.kctl.yaml")
	if err := f.Save(c.creds); err != nil {
		t.Fatal(err)
	}
	c.waitHealthy(90 * time.Second)
	return c
}

// kctl runs kctl on the host with the admin credentials.
func (c *cluster) kctl(timeout time.Duration, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.bin, testenv.Kctl), append([]string{"--credentials", c.creds}, args...)...)
	cmd.Dir = c.dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	if err := cmd.Wait(); err != nil {
		return stdout.String(), fmt.Errorf("kctl %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

type clusterStatus struct {
	Leader   string   `json:"leader"`
	Problems []string `json:"problems"`
	Nodes    []struct {
		Name, State  string
		Voter        bool
		AppliedIndex uint64 `json:"applied_index"`
	} `json:"nodes"`
}

// waitHealthy waits until every node is a voter, leader or follower, with
// a leader and no problem reported.
func (c *cluster) waitHealthy(timeout time.Duration) {
	c.t.Helper()
	testenv.WaitFor(c.t, timeout, func() error {
		out, err := c.kctl(10*time.Second, "cluster", "status", "-o", "json")
		var st clusterStatus
		if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
			return fmt.Errorf("cluster status: %v (%v)", err, jerr)
		}
		ok := 0
		for _, nd := range st.Nodes {
			if nd.Voter && (nd.State == "leader" || nd.State == "follower") {
				ok++
			}
		}
		if ok != len(c.nodes) || st.Leader == "" || len(st.Problems) > 0 {
			return fmt.Errorf("%d of %d voters up: %s", ok, len(c.nodes), strings.TrimSpace(out))
		}
		return nil
	})
}

// leader returns the node the cluster reports as leader, or nil.
func (c *cluster) leader() *node {
	out, _ := c.kctl(3*time.Second, "cluster", "status", "-o", "json")
	var st clusterStatus
	if json.Unmarshal([]byte(out), &st) != nil {
		return nil
	}
	for _, nd := range c.nodes {
		if nd.name == st.Leader {
			return nd
		}
	}
	return nil
}

// addrs are the nodes' API addresses.
func (c *cluster) addrs() []string {
	var a []string
	for _, nd := range c.nodes {
		a = append(a, nd.api)
	}
	return a
}
