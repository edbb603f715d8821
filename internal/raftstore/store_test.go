package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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
	c.Kill(t, old)
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
	c.Restart(t, old)
	c.EnsureSame(t)
	mustGet(t, c.Store(old), "t", "after", "x")
}
