package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/protocol"
)

func putN(t *testing.T, c *TestCluster, table string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		c.Apply(t, &raftcmdv1.Command{RequestId: fmt.Sprintf("%s-%d", table, i), Mutations: []*raftcmdv1.Mutation{
			mPut(table, fmt.Sprintf("k%04d", i), fmt.Sprintf("v%d", i)),
			{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: "audit", Value: []byte{byte(i)}}}},
		}})
	}
}

// sameRecords fails unless a and b hold the same records, entry by entry
// (table, key, value, create and modify index).
func sameRecords(t *testing.T, a, b *Snapshot) {
	t.Helper()
	type rec struct {
		table string
		r     Record
	}
	var ra, rb []rec
	a.Each(func(table string, r Record) bool { ra = append(ra, rec{table, r}); return true })
	b.Each(func(table string, r Record) bool { rb = append(rb, rec{table, r}); return true })
	if len(ra) != len(rb) {
		t.Fatalf("%d records, want %d", len(rb), len(ra))
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		if x.table != y.table || x.r.Key != y.r.Key || !bytes.Equal(x.r.Value, y.r.Value) || x.r.CreateIndex != y.r.CreateIndex || x.r.ModifyIndex != y.r.ModifyIndex {
			t.Fatalf("record %d = %s/%s@%d, want %s/%s@%d", i, y.table, y.r.Key, y.r.ModifyIndex, x.table, x.r.Key, x.r.ModifyIndex)
		}
	}
}

func TestStore_WriteStateSeedRestoresEverything(t *testing.T) {
	src := NewTestCluster(t, 3)
	putN(t, src, "deploys", 0, 50)
	leader := src.WaitForLeader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.ConsistentRead(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	info, err := leader.WriteState(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReadState(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if info.Index != want.Index() || info.Records != 100 {
		t.Fatalf("WriteState = %+v, want index %d, 100 records", info, want.Index())
	}

	// A fresh cluster whose first node is seeded with the state.
	seeded := false
	dst := NewTestCluster(t, 0, WithConfig(func(i int, c *Config) {
		if i == 0 && !seeded {
			if _, err := Seed(c.DataDir, c.NodeID, c.NodeID, bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatalf("Seed: %v", err)
			}
			seeded = true
		}
	}))
	dst.AddNode()
	st := dst.WaitForLeader(t)
	sameRecords(t, want, st.View())
	if got := st.AppliedIndex(); got < info.Index {
		t.Errorf("restored applied index %d, want ≥ %d", got, info.Index)
	}
	// Remembered request ids came along: a retry is still deduplicated.
	res := dst.Apply(t, &raftcmdv1.Command{RequestId: "deploys-7", Mutations: []*raftcmdv1.Mutation{mPut("deploys", "k0007", "changed")}})
	if r, _ := st.Get("deploys", "k0007"); string(r.Value) != "v7" || res.GetIndex() > info.Index {
		t.Errorf("retried request after restore = %v (value %q), want the first result", res, r.Value)
	}
	// The seeded node is a working cluster: new writes, new members.
	putN(t, dst, "after", 0, 5)
	j := dst.AddNode()
	if err := st.AddVoter(ctx, dst.ID(j), dst.Addr(j)); err != nil {
		t.Fatal(err)
	}
	dst.WaitFor(t, "the new member catches up", func() error {
		if n := dst.Store(j).View().Len(); n != st.View().Len() {
			return fmt.Errorf("%d records, want %d", n, st.View().Len())
		}
		return nil
	})

	// Seeding a directory that holds state is refused.
	dst.Kill(0)
	if _, err := Seed(dst.DataDir(0), "node0", "node0", bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Errorf("Seed on a used data dir = %v, want ErrAlreadyBootstrapped", err)
	}
	// A damaged state is refused before anything is written.
	bad := bytes.Clone(buf.Bytes())
	bad = bad[:len(bad)-3]
	if _, err := Seed(t.TempDir(), "x", "x", bytes.NewReader(bad)); err == nil {
		t.Errorf("Seed of a truncated state succeeded")
	}
}

func TestStore_ForceNewClusterFromSurvivor(t *testing.T) {
	force := false
	c := NewTestCluster(t, 3, WithConfig(func(i int, cfg *Config) {
		cfg.ForceNewCluster = force && i == 0
	}))
	putN(t, c, "deploys", 0, 30)
	c.WaitFor(t, "node0 has every write", func() error {
		if n := c.Store(0).View().Len(); n != 60 {
			return fmt.Errorf("%d records", n)
		}
		return nil
	})
	// Two of three lost for good; the survivor alone has no quorum.
	c.Kill(1)
	c.Kill(2)
	c.Kill(0)
	force = true
	c.Restart(0)
	force = false
	st := c.WaitForLeader(t)
	if st != c.Store(0) {
		t.Fatalf("leader is not the survivor")
	}
	srvs, err := st.Servers()
	if err != nil || len(srvs) != 1 {
		t.Fatalf("Servers() = %v, %v; want only the survivor", srvs, err)
	}
	if n := st.View().Len(); n != 60 {
		t.Errorf("survivor holds %d records after recovery, want 60", n)
	}
	putN(t, c, "after", 0, 3)
	// New members join the recovered cluster and catch up.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		j := c.AddNode()
		if err := st.AddVoter(ctx, c.ID(j), c.Addr(j)); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitFor(t, "the new members catch up", func() error {
		for _, j := range []int{3, 4} {
			if n := c.Store(j).View().Len(); n != 66 {
				return fmt.Errorf("%s has %d records, want 66", c.ID(j), n)
			}
		}
		return nil
	})
	// A restart without the flag resumes normally.
	c.Kill(0)
	c.Restart(0)
	c.WaitForLeader(t)
}

// A committed command of a format newer than this build halts every
// replica that reads it: nothing after it is applied, nothing is served,
// no snapshot is persisted, and a restart halts again at the same entry
// (the refusal is not a silent skip).
func TestCluster_NewerFormatHaltsEveryReplica(t *testing.T) {
	c := NewTestCluster(t, 3)
	putN(t, c, "t", 0, 5)
	leader := c.WaitForLeader(t)
	before := leader.AppliedIndex()
	newer := EncodeCommand(&raftcmdv1.Command{Format: uint32(protocol.Current() + 1), Mutations: []*raftcmdv1.Mutation{mPut("t", "future", "x")}})
	if err := ProposeRaw(leader, newer); err == nil || !errors.Is(err, ErrIncompatible) {
		// The leader's own FSM halts on it, so its Apply reports why.
		t.Logf("ProposeRaw = %v", err)
	}
	c.WaitFor(t, "every replica halts", func() error {
		for i := range 3 {
			if err := c.Store(i).Halted(); !errors.Is(err, ErrIncompatible) {
				return fmt.Errorf("%s: Halted() = %v", c.ID(i), err)
			}
		}
		return nil
	})
	for i := range 3 {
		s := c.Store(i)
		if _, ok := s.Get("t", "future"); ok {
			t.Errorf("%s applied the newer command", c.ID(i))
		}
		if s.AppliedIndex() != before {
			t.Errorf("%s applied index %d, want %d (the last entry it understood)", c.ID(i), s.AppliedIndex(), before)
		}
		if s.IsLeader() {
			t.Errorf("%s claims ready leadership while halted", c.ID(i))
		}
		if _, err := s.Apply(context.Background(), &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "x", "1")}}); !errors.Is(err, ErrIncompatible) {
			t.Errorf("%s: Apply = %v, want ErrIncompatible", c.ID(i), err)
		}
		if err := s.ConsistentRead(context.Background()); !errors.Is(err, ErrIncompatible) {
			t.Errorf("%s: ConsistentRead = %v, want ErrIncompatible", c.ID(i), err)
		}
		if err := s.Snapshot(); err == nil {
			t.Errorf("%s: Snapshot succeeded while halted", c.ID(i))
		}
	}
	c.Kill(1)
	c.Restart(1)
	c.WaitFor(t, "the restarted replica halts again", func() error {
		if err := c.Store(1).Halted(); !errors.Is(err, ErrIncompatible) {
			return fmt.Errorf("Halted() = %v", err)
		}
		return nil
	})
	if _, ok := c.Store(1).Get("t", "future"); ok {
		t.Errorf("the restarted replica applied the newer command")
	}
}
