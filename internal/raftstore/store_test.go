package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

func put(table, key, value string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Put{Put: &raftcmdv1.Put{Table: table, Key: key, Value: []byte(value)}}}
}

func del(table, key string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Delete{Delete: &raftcmdv1.Delete{Table: table, Key: key}}}
}

func appendM(table, value string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: table, Value: []byte(value)}}}
}

func delPrefix(table, prefix string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_DeletePrefix{DeletePrefix: &raftcmdv1.DeletePrefix{Table: table, Prefix: prefix}}}
}

func cmd(ms ...*raftcmdv1.Mutation) *raftcmdv1.Command {
	return &raftcmdv1.Command{Mutations: ms}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustGet fails unless table/key holds want on s.
func mustGet(t testing.TB, s *raftstore.Store, table, key, want string) {
	t.Helper()
	r, ok := s.Get(table, key)
	if !ok {
		t.Fatalf("Get(%s, %s) on %v: absent, want %q", table, key, s, want)
	}
	if string(r.Value) != want {
		t.Fatalf("Get(%s, %s) = %q, want %q", table, key, r.Value, want)
	}
}

func TestCluster_WritesThroughLeaderFollowersRedirect(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	leader := c.WaitForLeader(t)
	res, err := leader.Apply(ctxT(t), cmd(put("apps", "web", "v1")))
	if err != nil {
		t.Fatalf("Apply on leader: %v", err)
	}
	if !res.GetApplied() || res.GetIndex() == 0 {
		t.Fatalf("Apply result = %v, want applied with an index", res)
	}
	mustGet(t, leader, "apps", "web", "v1")

	lid, laddr := leader.Leader()
	for _, i := range c.Followers() {
		f := c.Store(i)
		_, err := f.Apply(ctxT(t), cmd(put("apps", "web", "v2")))
		var nl *raftstore.NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, raftstore.ErrNotLeader) {
			t.Fatalf("Apply on follower %s: err = %v, want *NotLeaderError", c.ID(i), err)
		}
		if nl.LeaderID != lid || nl.LeaderAddr != laddr {
			t.Errorf("NotLeaderError = %+v, want leader %s at %s", nl, lid, laddr)
		}
		if err := f.ConsistentRead(ctxT(t)); !errors.Is(err, raftstore.ErrNotLeader) {
			t.Errorf("ConsistentRead on follower: %v, want ErrNotLeader", err)
		}
		if err := f.WaitForIndex(ctxT(t), res.GetIndex()); err != nil {
			t.Fatalf("WaitForIndex on follower: %v", err)
		}
		mustGet(t, f, "apps", "web", "v1")
	}
	if err := leader.ConsistentRead(ctxT(t)); err != nil {
		t.Fatalf("ConsistentRead on leader: %v", err)
	}
	c.EnsureSame(t)
}

func TestCluster_KillLeaderKeepsWrites(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	for i := range 20 {
		c.Apply(t, cmd(put("t", fmt.Sprintf("k%02d", i), fmt.Sprint(i))))
	}
	old := c.Leader()
	c.Kill(old)
	newLeader := c.WaitForLeader(t)
	if newLeader == nil || c.Leader() == old {
		t.Fatalf("no new leader after killing %s", c.ID(old))
	}
	if err := newLeader.ConsistentRead(ctxT(t)); err != nil {
		t.Fatalf("ConsistentRead on new leader: %v", err)
	}
	if got := len(newLeader.List("t", "")); got != 20 {
		t.Fatalf("new leader has %d records, want 20", got)
	}
	c.Apply(t, cmd(put("t", "after", "x")))
	c.Restart(old)
	c.EnsureSame(t)
	mustGet(t, c.Store(old), "t", "after", "x")
}

func TestCluster_FullRestartLosesNothing(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	var last uint64
	for i := range 50 {
		last = c.Apply(t, cmd(put("t", fmt.Sprintf("k%02d", i), fmt.Sprint(i)), appendM("log", fmt.Sprint(i)))).GetIndex()
	}
	c.EnsureSame(t)
	for i := range 3 {
		c.Kill(i)
	}
	for i := range 3 {
		c.Restart(i)
	}
	leader := c.WaitForLeader(t)
	if err := leader.WaitForIndex(ctxT(t), last); err != nil {
		t.Fatalf("WaitForIndex(%d) after restart: %v", last, err)
	}
	c.EnsureSame(t)
	if n := len(leader.List("t", "")); n != 50 {
		t.Fatalf("after full restart t has %d records, want 50", n)
	}
	if n := len(leader.List("log", "")); n != 50 {
		t.Fatalf("after full restart log has %d records, want 50", n)
	}
	// The state is identical except for the applied index, which the new
	// leader's no-op entries advanced: compare content.
	for _, rec := range leader.List("t", "") {
		mustGet(t, c.Store(1), "t", rec.Key, string(rec.Value))
	}
}

func TestCluster_SnapshotTruncationAndLaggingNode(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3, raftstore.WithConfig(func(i int, cfg *raftstore.Config) {
		cfg.SnapshotThreshold = 20
		cfg.TrailingLogs = 5
		cfg.SnapshotInterval = 50 * time.Millisecond
	}))
	lag := c.Followers()[0]
	c.Kill(lag)
	for i := range 200 {
		c.Apply(t, cmd(put("t", fmt.Sprintf("k%03d", i), fmt.Sprint(i))))
	}
	last := c.Apply(t, cmd(put("t", "last", "x"))).GetIndex()
	// Snapshot (and so truncate the log) on every live node, so whichever is
	// leader when the lagging node returns no longer has the entries it lacks.
	for i := range 3 {
		s := c.Store(i)
		if s == nil {
			continue
		}
		if err := s.WaitForIndex(ctxT(t), last); err != nil {
			t.Fatal(err)
		}
		if err := s.Snapshot(); err != nil {
			t.Fatalf("Snapshot on %s: %v", c.ID(i), err)
		}
		if got, _ := strconv.ParseUint(s.Stats()["last_snapshot_index"], 10, 64); got < last {
			t.Fatalf("%s last_snapshot_index = %d after Snapshot, want >= %d", c.ID(i), got, last)
		}
	}
	c.Restart(lag)
	// The lagging node's log ended long before the leader's first kept
	// entry, so it can only catch up by installing the leader's snapshot.
	c.EnsureSame(t)
	// Raft reports the installed snapshot a moment after the state is
	// there: poll for it.
	c.WaitFor(t, "the lagging node reports an installed snapshot", func() error {
		if got := c.Store(lag).Stats()["last_snapshot_index"]; got == "0" {
			return errors.New("last_snapshot_index = 0: caught up without a snapshot install?")
		}
		return nil
	})
	if n := len(c.Store(lag).List("t", "")); n != 201 {
		t.Fatalf("lagging node has %d records, want 201", n)
	}
	// It restarts from its own snapshot + log, too.
	c.Kill(lag)
	c.Restart(lag)
	c.Apply(t, cmd(put("t", "final", "x")))
	c.EnsureSame(t)
}

func TestCluster_RequestIDDedupeAcrossLeaderChange(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	c1 := &raftcmdv1.Command{RequestId: "deploy-42", Mutations: []*raftcmdv1.Mutation{appendM("events", "deployed")}}
	first := c.Apply(t, c1)
	old := c.Leader()
	c.Kill(old)
	c.WaitForLeader(t)
	again := c.Apply(t, c1)
	if again.GetIndex() != first.GetIndex() || again.GetAppendedKeys()[0] != first.GetAppendedKeys()[0] {
		t.Fatalf("retry on the new leader = %v, want the first result %v", again, first)
	}
	if n := len(c.Store(c.Leader()).List("events", "")); n != 1 {
		t.Fatalf("events has %d records after a retried append, want 1", n)
	}
}

func TestCluster_LiveMembershipChanges(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	c.Apply(t, cmd(put("t", "before", "x")))

	n := c.AddNode()
	if c.Store(n).HasState() {
		t.Fatalf("new node HasState() = true before joining")
	}
	addVoter := func(s *raftstore.Store) error { return s.AddVoter(ctxT(t), c.ID(n), c.Addr(n)) }
	c.OnLeader(t, "AddVoter", addVoter)
	c.OnLeader(t, "AddVoter again (idempotent)", addVoter)
	c.EnsureSame(t)
	mustGet(t, c.Store(n), "t", "before", "x")
	if !c.Store(n).HasState() {
		t.Errorf("joined node HasState() = false")
	}
	srvs, err := c.Store(c.Leader()).Servers()
	if err != nil || len(srvs) != 4 {
		t.Fatalf("Servers() = %v, %v; want 4 servers", srvs, err)
	}
	leaders := 0
	for _, s := range srvs {
		if !s.Voter {
			t.Errorf("server %s is not a voter", s.ID)
		}
		if s.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("Servers() marks %d leaders, want 1", leaders)
	}

	// Remove a follower; it stops receiving writes.
	var victim int
	for _, f := range c.Followers() {
		if f != n {
			victim = f
			break
		}
	}
	remove := func(s *raftstore.Store) error { return s.RemoveServer(ctxT(t), c.ID(victim)) }
	c.OnLeader(t, "RemoveServer", remove)
	c.OnLeader(t, "RemoveServer again (idempotent)", remove)
	res := c.Apply(t, cmd(put("t", "after", "y")))
	if err := c.Store(n).WaitForIndex(ctxT(t), res.GetIndex()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Store(victim).Get("t", "after"); ok {
		t.Errorf("removed node %s received a write made after its removal", c.ID(victim))
	}
	srvs, _ = c.Store(c.Leader()).Servers()
	if len(srvs) != 3 {
		t.Errorf("Servers() after removal = %v, want 3", srvs)
	}

	// A rebuilt node rejoining under the same ID at a new address replaces
	// its stale entry.
	c.Kill(victim)
	c.OnLeader(t, "AddVoter with a new address", func(s *raftstore.Store) error {
		return s.AddVoter(ctxT(t), c.ID(n), "moved-"+c.Addr(n))
	})
	srvs, _ = c.Store(c.Leader()).Servers()
	for _, s := range srvs {
		if s.ID == c.ID(n) && s.Address != "moved-"+c.Addr(n) {
			t.Errorf("server %s address = %s, want the new address", s.ID, s.Address)
		}
	}
}

func TestStore_BootstrapTwiceRefused(t *testing.T) {
	c := raftstore.NewTestCluster(t, 1)
	s := c.Store(0)
	if !s.HasState() {
		t.Fatalf("HasState() = false after bootstrap")
	}
	if err := s.Bootstrap(); !errors.Is(err, raftstore.ErrAlreadyBootstrapped) {
		t.Fatalf("second Bootstrap = %v, want ErrAlreadyBootstrapped", err)
	}
	c.Kill(0)
	c.Restart(0)
	if err := c.Store(0).Bootstrap(); !errors.Is(err, raftstore.ErrAlreadyBootstrapped) {
		t.Fatalf("Bootstrap after restart = %v, want ErrAlreadyBootstrapped", err)
	}
	c.WaitForLeader(t)
	if err := c.Store(0).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(0).Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	if _, err := c.Store(0).Apply(ctxT(t), cmd(put("t", "k", "v"))); !errors.Is(err, raftstore.ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}
}

func TestStore_ApplyRejectsInvalid(t *testing.T) {
	c := raftstore.NewTestCluster(t, 1)
	s := c.WaitForLeader(t)
	for name, bad := range map[string]*raftcmdv1.Command{
		"no mutations": {},
		"empty table":  cmd(put("", "k", "v")),
		"nul in table": cmd(put("a\x00b", "k", "v")),
		"empty op":     cmd(&raftcmdv1.Mutation{}),
		"no check":     {Preconditions: []*raftcmdv1.Precondition{{Table: "t", Key: "k"}}, Mutations: []*raftcmdv1.Mutation{put("t", "k", "v")}},
	} {
		if _, err := s.Apply(ctxT(t), bad); !errors.Is(err, raftstore.ErrInvalidCommand) {
			t.Errorf("Apply(%s) = %v, want ErrInvalidCommand", name, err)
		}
	}
	big := cmd(put("t", "k", string(make([]byte, raftstore.MaxCommandBytes))))
	if _, err := s.Apply(ctxT(t), big); !errors.Is(err, raftstore.ErrCommandTooLarge) {
		t.Errorf("Apply(too large) = %v, want ErrCommandTooLarge", err)
	}
}

func TestStore_WatchAndView(t *testing.T) {
	c := raftstore.NewTestCluster(t, 1)
	s := c.WaitForLeader(t)
	ch, stop := s.Watch()
	defer stop()
	view := s.View()
	res, err := s.Apply(ctxT(t), cmd(put("t", "a", "1"), put("t", "b", "2"), put("t", "c", "3")))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch not notified after Apply")
	}
	if _, ok := view.Get("t", "a"); ok {
		t.Errorf("a view taken before the write sees it")
	}
	v := s.View()
	if v.Index() < res.GetIndex() {
		t.Errorf("View().Index() = %d, want >= %d", v.Index(), res.GetIndex())
	}
	var keys []string
	for _, r := range v.List("t", "") {
		keys = append(keys, r.Key)
	}
	if fmt.Sprint(keys) != "[a b c]" {
		t.Errorf("List(t) keys = %v, want [a b c]", keys)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.WaitForIndex(ctx, res.GetIndex()+1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForIndex(future) = %v, want DeadlineExceeded", err)
	}
}

func TestCluster_LeaderChAndPartition(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	li := c.Leader()
	old := c.Store(li)
	lch := old.LeaderCh()
	select {
	case v := <-lch:
		if !v {
			t.Fatalf("LeaderCh first value = false on the leader")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LeaderCh gave nothing on the leader")
	}
	c.Apply(t, cmd(put("t", "k", "1")))

	// Isolate the leader: the majority elects another, the old leader
	// steps down and cannot commit.
	c.Partition(li)
	// Right after the cut the old leader may still confirm a read: an
	// AppendEntries sent before the cut is answered after it, and raft's
	// VerifyLeader counts that answer. That read is not stale: the follower
	// that answered refuses to vote for anyone else until its heartbeat
	// timeout, so no other leader can exist yet. Once the majority has
	// elected a new leader, the old one must refuse, whether or not it knows
	// it was deposed.
	c.WaitFor(t, "a new leader in the majority", func() error {
		for _, i := range []int{0, 1, 2} {
			if i != li && c.Store(i).IsLeader() {
				return nil
			}
		}
		return errors.New("none yet")
	})
	if err := old.ConsistentRead(ctxT(t)); err == nil {
		t.Fatal("ConsistentRead on the deposed leader succeeded after the majority elected a new one")
	}
	select {
	case v := <-lch:
		if v {
			t.Fatalf("LeaderCh = true after isolation, want false")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LeaderCh did not report the lost leadership")
	}
	if _, err := old.Apply(ctxT(t), cmd(put("t", "k", "stale"))); err == nil {
		t.Fatal("isolated old leader committed a write")
	}
	newLeader := -1
	for _, i := range []int{0, 1, 2} {
		if i != li && c.Store(i).IsLeader() {
			newLeader = i
		}
	}
	if _, err := c.Store(newLeader).Apply(ctxT(t), cmd(put("t", "k", "2"))); err != nil {
		t.Fatalf("Apply on new leader: %v", err)
	}
	c.Heal()
	c.EnsureSame(t)
	mustGet(t, old, "t", "k", "2")
}

func TestStore_ApplyContextExpired(t *testing.T) {
	c := raftstore.NewTestCluster(t, 1)
	s := c.WaitForLeader(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Apply(ctx, cmd(put("t", "k", "v"))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func TestStore_DataDirInUse(t *testing.T) {
	c := raftstore.NewTestCluster(t, 1)
	c.WaitForLeader(t)
	// A second Open of node0's data dir while node0 runs must fail, not hang.
	_, tr := raft.NewInmemTransport("")
	t.Cleanup(func() { tr.Close() })
	_, err := raftstore.Open(raftstore.Config{NodeID: "node0", DataDir: c.DataDir(0), Transport: tr})
	if !errors.Is(err, raftstore.ErrDataDirInUse) {
		t.Fatalf("second Open = %v, want ErrDataDirInUse", err)
	}
}

func TestStore_CloseLeaksNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, opts := range [][]raftstore.TestOption{nil, {raftstore.WithTLS()}} {
		t.Run(fmt.Sprintf("tls=%v", len(opts) > 0), func(t *testing.T) {
			c := raftstore.NewTestCluster(t, 3, opts...)
			c.Apply(t, cmd(put("t", "k", "v")))
			c.Kill(c.Leader())
			c.WaitForLeader(t)
		})
	}
	raftstore.WaitFor(t, 10*time.Second, "goroutines to exit", func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

func TestCluster_LeadershipTransfer(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	old := c.Leader()
	if err := c.Store(old).LeadershipTransfer(); err != nil {
		t.Fatalf("LeadershipTransfer: %v", err)
	}
	c.WaitFor(t, "another node to lead", func() error {
		if li := c.Leader(); li < 0 || li == old {
			return fmt.Errorf("leader is %d", li)
		}
		return nil
	})
	for _, i := range c.Followers() {
		if err := c.Store(i).LeadershipTransfer(); !errors.Is(err, raftstore.ErrNotLeader) {
			t.Errorf("LeadershipTransfer on follower %s = %v, want ErrNotLeader", c.ID(i), err)
		}
	}
}
