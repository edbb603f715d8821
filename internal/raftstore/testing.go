package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"google.golang.org/protobuf/proto"
)

// TestCluster is an in-process raft cluster for tests. Methods without a
// testing.TB argument (Kill, Restart, AddNode, Partition, Heal) report
// failures on the t given to NewTestCluster.
//
// It runs n Stores with data in t.TempDir(), connected by raft's in-memory
// transport or, with WithTLS, by real mutual TLS over loopback. Timeouts are
// shortened so elections take a few hundred milliseconds. Everything is
// closed in t.Cleanup.
type TestCluster struct {
	t    testing.TB
	opts testOptions
	// CA signs the nodes' certificates (WithTLS only).
	CA *TestCA

	// requests numbers the request ids Apply gives commands without one.
	requests atomic.Uint64

	// mu guards nodes.
	mu    sync.Mutex
	nodes []*testNode
}

type testNode struct {
	id, dir, addr string
	store         *Store // nil while killed
	inmem         *raft.InmemTransport
}

type testOptions struct {
	tls       bool
	configure func(i int, c *Config)
	logger    *slog.Logger
	timeout   time.Duration
}

// testLogger is the default WithLogger. Only this package's tests change it
// (log_test.go), so no environment variable is read by production code.
var testLogger = slog.New(slog.DiscardHandler)

// TestOption configures NewTestCluster.
type TestOption func(*testOptions)

// WithTLS runs raft over real mutual TLS on 127.0.0.1 with certificates from
// a TestCA (TestCluster.CA) and VerifyPeer = RequireRole("controller").
func WithTLS() TestOption { return func(o *testOptions) { o.tls = true } }

// WithConfig adjusts node i's Config before each Open (e.g. SnapshotThreshold).
func WithConfig(f func(i int, c *Config)) TestOption {
	return func(o *testOptions) { o.configure = f }
}

// WithLogger sends every node's raft logs to l (default: discarded; this
// package's own tests send them to stderr under KCTL_RAFT_LOG=1).
func WithLogger(l *slog.Logger) TestOption { return func(o *testOptions) { o.logger = l } }

// WithTimeout sets heartbeat, election and lease timeouts (default 200ms).
func WithTimeout(d time.Duration) TestOption { return func(o *testOptions) { o.timeout = d } }

// NewTestCluster starts an n-node cluster: node 0 bootstraps, the others are
// added with AddVoter, and it returns once every node has applied the
// membership changes.
func NewTestCluster(t testing.TB, n int, opts ...TestOption) *TestCluster {
	t.Helper()
	o := testOptions{timeout: 200 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = testLogger
	}
	c := &TestCluster{t: t, opts: o}
	if o.tls {
		c.CA = NewTestCA(t)
	}
	t.Cleanup(c.closeAll)
	for i := 0; i < n; i++ {
		c.AddNode()
	}
	if n == 0 {
		return c
	}
	if err := c.Store(0).Bootstrap(); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	leader := c.WaitForLeader(t)
	for i := 1; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := leader.AddVoter(ctx, c.ID(i), c.Addr(i))
		cancel()
		if err != nil {
			t.Fatalf("AddVoter(%s): %v", c.ID(i), err)
		}
	}
	c.WaitFor(t, "every node knows every server", func() error {
		for i := 0; i < n; i++ {
			srvs, err := c.Store(i).Servers()
			if err != nil {
				return err
			}
			if len(srvs) != n {
				return fmt.Errorf("%s knows %d servers, want %d", c.ID(i), len(srvs), n)
			}
		}
		return nil
	})
	return c
}

// AddNode starts a new empty node (not a member until the leader AddVoters
// it) and returns its index.
func (c *TestCluster) AddNode() int {
	t := c.t
	t.Helper()
	c.mu.Lock()
	i := len(c.nodes)
	n := &testNode{id: fmt.Sprintf("node%d", i), dir: filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i))}
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	c.open(t, i)
	return i
}

func (c *TestCluster) node(i int) *testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// N is the number of nodes, live or killed.
func (c *TestCluster) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

// ID is node i's raft ID; Addr its raft address.
func (c *TestCluster) ID(i int) string   { return c.node(i).id }
func (c *TestCluster) Addr(i int) string { return c.node(i).addr }

// DataDir is node i's Config.DataDir.
func (c *TestCluster) DataDir(i int) string { return c.node(i).dir }

// Store is node i's Store (nil while killed).
func (c *TestCluster) Store(i int) *Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].store
}

func (c *TestCluster) open(t testing.TB, i int) {
	t.Helper()
	n := c.node(i)
	cfg := Config{
		NodeID:             n.id,
		DataDir:            n.dir,
		Logger:             c.opts.logger,
		HeartbeatTimeout:   c.opts.timeout,
		ElectionTimeout:    c.opts.timeout,
		LeaderLeaseTimeout: c.opts.timeout,
		CommitTimeout:      5 * time.Millisecond,
	}
	if c.opts.tls {
		addr := n.addr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		var ln net.Listener
		var err error
		// A restarted node reuses its port; retry briefly if the old socket
		// is still being torn down.
		deadline := time.Now().Add(5 * time.Second)
		for {
			ln, err = net.Listen("tcp", addr)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("listen %s: %v", addr, err)
		}
		n.addr = ln.Addr().String()
		cert := c.CA.Issue(t, n.id, "controller", 0)
		cfg.Listener = ln
		cfg.ServerTLS = c.CA.ServerTLS(cert)
		cfg.ClientTLS = c.CA.ClientTLS(cert)
		cfg.VerifyPeer = RequireRole("controller")
	} else {
		if n.addr == "" {
			n.addr = n.id
		}
		_, tr := raft.NewInmemTransportWithTimeout(raft.ServerAddress(n.addr), 500*time.Millisecond)
		n.inmem = tr
		cfg.Transport = tr
		c.mu.Lock()
		for _, o := range c.nodes {
			if o == n || o.inmem == nil || o.store == nil {
				continue
			}
			tr.Connect(raft.ServerAddress(o.addr), o.inmem)
			o.inmem.Connect(raft.ServerAddress(n.addr), tr)
		}
		c.mu.Unlock()
	}
	if c.opts.configure != nil {
		c.opts.configure(i, &cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", n.id, err)
	}
	c.mu.Lock()
	n.store = s
	c.mu.Unlock()
}

// Kill shuts node i down (its data stays on disk).
func (c *TestCluster) Kill(i int) {
	t := c.t
	t.Helper()
	n := c.node(i)
	c.mu.Lock()
	s := n.store
	n.store = nil
	c.mu.Unlock()
	if s == nil {
		t.Fatalf("Kill(%d): already killed", i)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Kill(%d): %v", i, err)
	}
	if n.inmem != nil {
		c.mu.Lock()
		for _, o := range c.nodes {
			if o != n && o.inmem != nil {
				o.inmem.Disconnect(raft.ServerAddress(n.addr))
			}
		}
		c.mu.Unlock()
		_ = n.inmem.Close()
		n.inmem = nil
	}
}

// Restart reopens a killed node from its data directory.
func (c *TestCluster) Restart(i int) {
	t := c.t
	t.Helper()
	if c.Store(i) != nil {
		t.Fatalf("Restart(%d): node is running", i)
	}
	c.open(t, i)
}

// Partition cuts the in-memory links between the nodes in group and the
// rest (in-memory transport only). Heal reconnects everyone.
func (c *TestCluster) Partition(group ...int) {
	t := c.t
	t.Helper()
	if c.opts.tls {
		t.Fatalf("Partition: not supported with WithTLS")
	}
	in := map[int]bool{}
	for _, g := range group {
		in[g] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.nodes {
		for j, b := range c.nodes {
			if in[i] != in[j] && a.inmem != nil {
				a.inmem.Disconnect(raft.ServerAddress(b.addr))
			}
		}
	}
}

// Heal reconnects every live node to every other (in-memory transport only).
func (c *TestCluster) Heal() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b && a.inmem != nil && b.inmem != nil {
				a.inmem.Connect(raft.ServerAddress(b.addr), b.inmem)
			}
		}
	}
}

// WaitFor polls cond every 10ms until it returns nil, failing the test after
// 15 seconds with cond's last error.
func (c *TestCluster) WaitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	WaitFor(t, 15*time.Second, what, cond)
}

// WaitFor polls cond every 10ms until it returns nil or timeout passes, then
// fails the test with cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		}
		<-tick.C
	}
}

// Leader returns the index of the ready leader among live nodes, or -1.
func (c *TestCluster) Leader() int {
	for i := 0; i < c.N(); i++ {
		if s := c.Store(i); s != nil && s.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitForLeader waits until exactly one live node is the ready leader and
// every live member agrees on it, and returns it.
func (c *TestCluster) WaitForLeader(t testing.TB) *Store {
	t.Helper()
	var leader *Store
	c.WaitFor(t, "a leader", func() error {
		li := -1
		for i := 0; i < c.N(); i++ {
			s := c.Store(i)
			if s == nil || !s.IsLeader() {
				continue
			}
			if li >= 0 {
				return fmt.Errorf("two leaders: %s and %s", c.ID(li), c.ID(i))
			}
			li = i
		}
		if li < 0 {
			return errors.New("no ready leader")
		}
		leader = c.Store(li)
		return nil
	})
	return leader
}

// Followers returns the indexes of the live nodes that are not the leader.
func (c *TestCluster) Followers() []int {
	var out []int
	for i := 0; i < c.N(); i++ {
		if s := c.Store(i); s != nil && !s.IsLeader() {
			out = append(out, i)
		}
	}
	return out
}

// Apply applies cmd through the current leader, following leader changes,
// and fails the test if it cannot. Set cmd.RequestId to make retries safe.
func (c *TestCluster) Apply(t testing.TB, cmd *raftcmdv1.Command) *raftcmdv1.Result {
	t.Helper()
	if cmd.GetRequestId() == "" {
		// A write retried after a lost leadership may have been committed
		// already: a request id makes the retry apply it once.
		cmd = proto.CloneOf(cmd)
		cmd.RequestId = fmt.Sprintf("testcluster-%d", c.requests.Add(1))
	}
	var res *raftcmdv1.Result
	c.WaitFor(t, "apply", func() error {
		li := c.Leader()
		if li < 0 {
			return errors.New("no leader")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := c.Store(li).Apply(ctx, cmd)
		if err != nil {
			if errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("Apply: %v", err)
			}
			return err
		}
		res = r
		return nil
	})
	return res
}

// OnLeader runs f on the current leader, retrying (until the WaitFor
// deadline) while leadership moves: f gets ErrNotLeader or ErrLeadershipLost.
// Other errors fail the test. f must be idempotent.
func (c *TestCluster) OnLeader(t testing.TB, what string, f func(s *Store) error) {
	t.Helper()
	var fatal error
	c.WaitFor(t, what, func() error {
		li := c.Leader()
		if li < 0 {
			return errors.New("no leader")
		}
		err := f(c.Store(li))
		if err != nil && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost) {
			fatal = err
			return nil
		}
		return err
	})
	if fatal != nil {
		t.Fatalf("%s: %v", what, fatal)
	}
}

// EnsureSame waits until every live node has applied the same index and has
// the same state hash.
func (c *TestCluster) EnsureSame(t testing.TB) {
	t.Helper()
	c.WaitFor(t, "identical state on every node", func() error {
		var first string
		var firstIdx uint64
		var firstHash [32]byte
		for i := 0; i < c.N(); i++ {
			s := c.Store(i)
			if s == nil {
				continue
			}
			idx, h := s.StateHash()
			if first == "" {
				first, firstIdx, firstHash = c.ID(i), idx, h
				continue
			}
			if idx != firstIdx || h != firstHash {
				return fmt.Errorf("%s at index %d hash %x, %s at index %d hash %x", first, firstIdx, firstHash[:6], c.ID(i), idx, h[:6])
			}
		}
		return nil
	})
}

func (c *TestCluster) closeAll() {
	c.mu.Lock()
	nodes := append([]*testNode(nil), c.nodes...)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		c.mu.Lock()
		s := n.store
		n.store = nil
		c.mu.Unlock()
		if s != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Close(); err != nil {
					c.t.Errorf("close %s: %v", n.id, err)
				}
			}()
		}
	}
	wg.Wait()
	for _, n := range nodes {
		if n.inmem != nil {
			_ = n.inmem.Close()
		}
	}
}

// ProposeRaw proposes data as a log entry on leader s without any check,
// as a newer build would (compatibility tests: entry types, fields or
// command formats this build does not know), and waits for it to commit.
func ProposeRaw(s *Store, data []byte) error {
	return s.wait(context.Background(), s.raft.ApplyLog(raft.Log{Data: data}, 5*time.Second))
}

// EncodeCommand encodes cmd as a command log entry, unchecked.
func EncodeCommand(cmd *raftcmdv1.Command) []byte {
	b, err := proto.Marshal(cmd)
	if err != nil {
		panic(err)
	}
	return append([]byte{entryCommand}, b...)
}
