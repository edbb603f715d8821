// Package controllertest runs clusters of real controllers in-process for
// tests: real Raft over mutual TLS, real gRPC servers on 127.0.0.1:0, real
// data directories under t.TempDir(), with timeouts shortened so elections
// take milliseconds. Everything a Cluster starts stops in t.Cleanup.
//
//	tc := controllertest.NewCluster(t, 3)
//	l := tc.Nodes[tc.Leader()].C
//	tc.Kill(tc.Leader())
//	err := tc.AdminClient().Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error { … })
package controllertest

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
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// Node is one controller of a Cluster.
type Node struct {
	// Name is the controller's name (c1, c2, …).
	Name string
	// Dir is its data directory.
	Dir string
	// API and Raft are its addresses: fixed for the test, so a node
	// restarted after Kill comes back at the same ones.
	API, Raft string
	// C is the running controller, nil after Kill.
	C *controller.Controller
}

// Cluster is an in-process cluster of real controllers.
type Cluster struct {
	// Nodes are the controllers, started or killed.
	Nodes []*Node
	// Admin is the admin operator's credentials file, written by --init.
	Admin *ctlclient.File
	// AdminPath is where Admin is on disk (kctl --credentials).
	AdminPath string
	// Logger is what the controllers log to: discarded unless
	// KCTL_TEST_LOG is set.
	Logger *slog.Logger
	// HeartbeatInterval is the agents' heartbeat interval.
	HeartbeatInterval time.Duration

	t         testing.TB
	raft      func(*raftstore.Config)
	clock     clock.Clock
	retention controller.AuditRetention
	tweak     func(*controller.Config)
}

// Option adjusts a Cluster.
type Option func(*Cluster)

// WithRaft tweaks every node's Raft config after the test defaults.
func WithRaft(f func(*raftstore.Config)) Option { return func(c *Cluster) { c.raft = f } }

// WithConfig adjusts every node's controller config (--autolock, say).
func WithConfig(f func(*controller.Config)) Option { return func(c *Cluster) { c.tweak = f } }

// WithClock gives every node clk for its safety timers (Config.Clock): a
// test passes a clock.Fake and advances it.
func WithClock(clk clock.Clock) Option { return func(c *Cluster) { c.clock = clk } }

// WithAuditRetention sets every controller's audit retention policy.
func WithAuditRetention(r controller.AuditRetention) Option {
	return func(c *Cluster) { c.retention = r }
}

// WithHeartbeat sets the agents' heartbeat interval (default 500ms).
func WithHeartbeat(d time.Duration) Option { return func(c *Cluster) { c.HeartbeatInterval = d } }

// WithLogger sends the controllers' logs to l.
func WithLogger(l *slog.Logger) Option { return func(c *Cluster) { c.Logger = l } }

// Logger returns a logger for tests: to stderr when KCTL_TEST_LOG is set,
// discarded otherwise.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("KCTL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// FreeAddr is testenv.FreeAddr: a loopback address with a port free right
// now, outside the ephemeral range.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return testenv.FreeAddr(t)
}

// NewCluster starts n controllers: the first with --init, the others
// joined with a controller token. It returns once every node serves.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	tc := &Cluster{t: t, HeartbeatInterval: 500 * time.Millisecond}
	for _, o := range opts {
		o(tc)
	}
	if tc.Logger == nil {
		tc.Logger = Logger(t)
	}
	base := t.TempDir()
	for i := range n {
		name := fmt.Sprintf("c%d", i+1)
		tc.Nodes = append(tc.Nodes, &Node{Name: name, Dir: filepath.Join(base, name), API: FreeAddr(t), Raft: FreeAddr(t)})
	}
	t.Cleanup(tc.KillAll)
	tc.start(0, true, "")
	tc.AdminPath = filepath.Join(tc.Nodes[0].Dir, "admin.kctl.yaml")
	f, err := ctlclient.LoadFile(tc.AdminPath)
	if err != nil {
		t.Fatal(err)
	}
	tc.Admin = f
	if n > 1 {
		tok := tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", uint32(n-1), time.Hour)
		for i := 1; i < n; i++ {
			tc.start(i, false, tok)
		}
	}
	return tc
}

// Config returns node i's controller config, without listeners.
func (tc *Cluster) Config(i int) controller.Config {
	n := tc.Nodes[i]
	cfg := controller.Config{
		Name: n.Name, DataDir: n.Dir, HeartbeatInterval: tc.HeartbeatInterval, PresenceInterval: 300 * time.Millisecond,
		Logger: tc.Logger.With("node", n.Name), Clock: tc.clock, AuditRetention: tc.retention,
		Raft: func(c *raftstore.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
			c.CommitTimeout = 5 * time.Millisecond
			if tc.raft != nil {
				tc.raft(c)
			}
		},
	}
	if tc.tweak != nil {
		tc.tweak(&cfg)
	}
	return cfg
}

// Restart starts node i again from its data directory (after Kill).
func (tc *Cluster) Restart(i int) {
	tc.t.Helper()
	tc.start(i, false, "")
}

// start starts node i: init, join (token) or resume (neither).
func (tc *Cluster) start(i int, init bool, token string) {
	t := tc.t
	t.Helper()
	n := tc.Nodes[i]
	cfg := tc.Config(i)
	cfg.Init = init
	if token != "" {
		cfg.JoinAddrs, cfg.Token = []string{tc.Nodes[0].API}, token
		if tc.Nodes[0].C == nil {
			cfg.JoinAddrs = tc.LiveAddrs()
		}
	}
	var err error
	// A port released by a killed node may linger briefly: retry.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cfg.APIListener, err = net.Listen("tcp", n.API)
		if err == nil {
			if cfg.RaftListener, err = net.Listen("tcp", n.Raft); err == nil {
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
		t.Fatalf("Start(%s) = %v", n.Name, err)
	}
	n.C = c
}

// LiveAddrs lists the API addresses of the running nodes.
func (tc *Cluster) LiveAddrs() []string {
	var out []string
	for _, n := range tc.Nodes {
		if n.C != nil {
			out = append(out, n.API)
		}
	}
	return out
}

// Kill stops node i (Close: its sessions end, Raft stops). Its data
// directory stays for Restart.
func (tc *Cluster) Kill(i int) {
	if c := tc.Nodes[i].C; c != nil {
		c.Close()
		tc.Nodes[i].C = nil
	}
}

// KillAll stops every node.
func (tc *Cluster) KillAll() {
	for i := range tc.Nodes {
		tc.Kill(i)
	}
}

// Leader waits until exactly one live node leads and returns its index.
func (tc *Cluster) Leader() int {
	tc.t.Helper()
	var leader int
	WaitFor(tc.t, 15*time.Second, "a leader", func() error {
		leader = -1
		for i, n := range tc.Nodes {
			if n.C != nil && n.C.IsLeader() {
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

// Follower returns the index of a live follower.
func (tc *Cluster) Follower() int {
	tc.t.Helper()
	l := tc.Leader()
	for i, n := range tc.Nodes {
		if i != l && n.C != nil {
			return i
		}
	}
	tc.t.Fatal("no live follower")
	return -1
}

// AdminClient returns an admin client talking to the given nodes only (all
// live nodes when none are given).
func (tc *Cluster) AdminClient(nodes ...int) *ctlclient.Client {
	tc.t.Helper()
	creds, err := tc.Admin.Credentials()
	if err != nil {
		tc.t.Fatal(err)
	}
	return tc.Client(creds, nodes...)
}

// Client returns a client with creds talking to the given nodes only (all
// live nodes when none are given).
func (tc *Cluster) Client(creds *pki.Credentials, nodes ...int) *ctlclient.Client {
	var addrs []string
	for _, i := range nodes {
		addrs = append(addrs, tc.Nodes[i].API)
	}
	if len(nodes) == 0 {
		addrs = tc.LiveAddrs()
	}
	return ctlclient.NewClient(creds, addrs, 3*time.Second)
}

// Token makes a join token as the admin.
func (tc *Cluster) Token(role controllerv1.Role, name, opRole string, uses uint32, ttl time.Duration) string {
	tc.t.Helper()
	var tok string
	err := tc.AdminClient().Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		r, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: role, Name: name, OperatorRole: opRole, Uses: uses, TtlSeconds: int64(ttl / time.Second)})
		tok = r.GetToken()
		return err
	})
	if err != nil {
		tc.t.Fatalf("CreateToken = %v", err)
	}
	return tok
}

// OperatorClient enrols an operator named name with role (admin, deployer
// or viewer) and returns a client with its credentials, talking to the
// given nodes only (all live nodes when none are given).
func (tc *Cluster) OperatorClient(name string, role pki.OperatorRole, nodes ...int) *ctlclient.Client {
	t := tc.t
	t.Helper()
	tok, err := pki.ParseToken(tc.Token(controllerv1.Role_ROLE_OPERATOR, name, string(role), 1, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, pki.Identity{Role: pki.RoleOperator, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := ctlclient.Join(ctx, tc.LiveAddrs(), tok, &controllerv1.JoinRequest{Token: tok.String(), CsrPem: csr}, 0)
	if err != nil {
		t.Fatalf("Join(operator %s) = %v", name, err)
	}
	creds, err := pki.NewCredentials(resp.GetCertPem(), key, resp.GetCaPem())
	if err != nil {
		t.Fatal(err)
	}
	return tc.Client(creds, nodes...)
}

// WaitFor polls cond until it returns nil, failing the test with cond's
// last error when timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
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
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// AddNode appends a node named name with an empty data directory and new
// addresses, not started; start it with Join. A name already used by an
// earlier node makes a replacement.
func (tc *Cluster) AddNode(name string) int {
	tc.t.Helper()
	tc.Nodes = append(tc.Nodes, &Node{Name: name, Dir: filepath.Join(tc.t.TempDir(), name), API: FreeAddr(tc.t), Raft: FreeAddr(tc.t)})
	return len(tc.Nodes) - 1
}

// Join starts node i with --join and token: it returns once the node is a
// voter that has caught up (controller.Start).
func (tc *Cluster) Join(i int, token string) {
	tc.t.Helper()
	tc.start(i, false, token)
}

// StartErr starts node i with cfg tweaked by tweak (listeners are set) and
// returns Start's error instead of failing the test; on success the node
// runs as tc.Nodes[i].
func (tc *Cluster) StartErr(ctx context.Context, i int, tweak func(*controller.Config)) error {
	tc.t.Helper()
	n := tc.Nodes[i]
	cfg := tc.Config(i)
	if tweak != nil {
		tweak(&cfg)
	}
	var err error
	if cfg.APIListener, err = net.Listen("tcp", n.API); err != nil {
		return err
	}
	if cfg.RaftListener, err = net.Listen("tcp", n.Raft); err != nil {
		cfg.APIListener.Close()
		return err
	}
	c, err := controller.Start(ctx, cfg)
	if err != nil {
		return err
	}
	n.C = c
	return nil
}
