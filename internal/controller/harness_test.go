package controller_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// testNode is one controller of a testCluster.
type testNode struct {
	name, dir, api, raft string
	c                    *controller.Controller
}

// testCluster is an in-process cluster of real controllers: real Raft over
// mutual TLS on loopback, real gRPC servers, real data directories.
type testCluster struct {
	t      testing.TB
	nodes  []*testNode
	admin  *ctlclient.File
	tweak  func(*raftstore.Config)
	hbeat  time.Duration
	logger *slog.Logger
	// lastToken is the last token mustToken made.
	lastToken string
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("KCTL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newTestCluster starts n controllers: the first with --init, the others
// joined with a controller token.
func newTestCluster(t testing.TB, n int, tweak func(*raftstore.Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, tweak: tweak, hbeat: 500 * time.Millisecond, logger: testLogger(t)}
	base := t.TempDir()
	for i := range n {
		tc.nodes = append(tc.nodes, &testNode{
			name: fmt.Sprintf("c%d", i+1), dir: filepath.Join(base, fmt.Sprintf("c%d", i+1)),
			api: freeAddr(t), raft: freeAddr(t),
		})
	}
	t.Cleanup(tc.closeAll)
	tc.start(0, true, "")
	f, err := ctlclient.LoadFile(filepath.Join(tc.nodes[0].dir, "admin.kctl.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tc.admin = f
	if n > 1 {
		tok := tc.token(controllerv1.Role_ROLE_CONTROLLER, "", "", uint32(n-1), time.Hour)
		for i := 1; i < n; i++ {
			tc.start(i, false, tok)
		}
	}
	return tc
}

func (tc *testCluster) config(i int) controller.Config {
	n := tc.nodes[i]
	return controller.Config{
		Name: n.name, DataDir: n.dir, HeartbeatInterval: tc.hbeat, PresenceInterval: 300 * time.Millisecond,
		Logger: tc.logger.With("node", n.name),
		Raft: func(c *raftstore.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
			c.CommitTimeout = 5 * time.Millisecond
			if tc.tweak != nil {
				tc.tweak(c)
			}
		},
	}
}

// start starts node i: init, join (token) or resume (neither).
func (tc *testCluster) start(i int, init bool, token string) {
	t := tc.t
	t.Helper()
	n := tc.nodes[i]
	cfg := tc.config(i)
	cfg.Init = init
	if token != "" {
		cfg.JoinAddrs, cfg.Token = []string{tc.nodes[0].api}, token
		if tc.nodes[0].c == nil {
			cfg.JoinAddrs = tc.liveAddrs()
		}
	}
	var err error
	// A port released by a killed node may linger briefly: retry.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cfg.APIListener, err = net.Listen("tcp", n.api)
		if err == nil {
			if cfg.RaftListener, err = net.Listen("tcp", n.raft); err == nil {
				break
			}
			cfg.APIListener.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // port still held by the old socket
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := controller.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start(%s) = %v", n.name, err)
	}
	n.c = c
}

func (tc *testCluster) liveAddrs() []string {
	var out []string
	for _, n := range tc.nodes {
		if n.c != nil {
			out = append(out, n.api)
		}
	}
	return out
}

// kill stops node i (Close: its sessions end, Raft stops).
func (tc *testCluster) kill(i int) {
	if c := tc.nodes[i].c; c != nil {
		c.Close()
		tc.nodes[i].c = nil
	}
}

func (tc *testCluster) closeAll() {
	for i := range tc.nodes {
		tc.kill(i)
	}
}

// waitLeader waits until exactly one live node leads and returns its index.
func (tc *testCluster) waitLeader() int {
	tc.t.Helper()
	var leader int
	waitFor(tc.t, 15*time.Second, "a leader", func() error {
		leader = -1
		for i, n := range tc.nodes {
			if n.c != nil && n.c.IsLeader() {
				if leader >= 0 {
					return fmt.Errorf("two leaders: %d and %d", leader, i)
				}
				leader = i
			}
		}
		if leader < 0 {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	return leader
}

// follower returns the index of a live follower.
func (tc *testCluster) follower() int {
	l := tc.waitLeader()
	for i, n := range tc.nodes {
		if i != l && n.c != nil {
			return i
		}
	}
	tc.t.Fatal("no live follower")
	return -1
}

// adminClient returns an admin client talking to the given nodes only.
func (tc *testCluster) adminClient(nodes ...int) *ctlclient.Client {
	tc.t.Helper()
	creds, err := tc.admin.Credentials()
	if err != nil {
		tc.t.Fatal(err)
	}
	return tc.client(creds, nodes...)
}

func (tc *testCluster) client(creds *pki.Credentials, nodes ...int) *ctlclient.Client {
	var addrs []string
	for _, i := range nodes {
		addrs = append(addrs, tc.nodes[i].api)
	}
	if len(nodes) == 0 {
		addrs = tc.liveAddrs()
	}
	return ctlclient.NewClient(creds, addrs, 3*time.Second)
}

func (tc *testCluster) token(role controllerv1.Role, name, opRole string, uses uint32, ttl time.Duration) string {
	tc.t.Helper()
	var tok string
	err := tc.adminClient().Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		r, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: role, Name: name, OperatorRole: opRole, Uses: uses, TtlSeconds: int64(ttl / time.Second)})
		tok = r.GetToken()
		return err
	})
	if err != nil {
		tc.t.Fatalf("CreateToken = %v", err)
	}
	return tok
}

// startAgent joins and runs an in-process agent with a fake runtime.
func (tc *testCluster) startAgent(name string, rt *countingRuntime, nodes ...int) *agent.Agent {
	a, _ := tc.startAgentStop(name, rt, nodes...)
	return a
}

// startAgentStop is startAgent that also returns a func stopping the agent.
func (tc *testCluster) startAgentStop(name string, rt *countingRuntime, nodes ...int) (*agent.Agent, func()) {
	t := tc.t
	t.Helper()
	var addrs []string
	for _, i := range nodes {
		addrs = append(addrs, tc.nodes[i].api)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New(ctx, agent.Config{
		Name: name, DataDir: filepath.Join(t.TempDir(), name), Controllers: addrs,
		Token: tc.token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour), Runtime: rt, Version: "test",
		Logger: tc.logger.With("agent", name), MaxBackoff: time.Second, DialTimeout: 2 * time.Second,
	})
	if err != nil {
		cancel()
		t.Fatalf("agent.New(%s) = %v", name, err)
		return nil, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return a, stop
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}
