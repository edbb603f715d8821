package raftstore_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kctl-dev/kctl/internal/raftstore"
)

// filesHolding lists the files under dir that contain needle.
func filesHolding(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A value overwritten in the state leaves every node's disk after Purge:
// the log entries and snapshots that held it are gone and raft.db, whose
// free pages would keep them, is rewritten. The nodes keep working, a
// write after the purge replicates, and a full restart loses nothing.
func TestPurge_OldValuesLeaveTheDisk(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3)
	canary := "purge-canary-0123456789abcdef"
	c.Apply(t, cmd(put("keys", "ca", canary)))
	for i := range 20 {
		c.Apply(t, cmd(put("t", fmt.Sprintf("k%02d", i), fmt.Sprint(i))))
	}
	c.EnsureSame(t)
	for i := range 3 {
		if err := c.Store(i).Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	last := c.Apply(t, cmd(put("keys", "ca", "sealed"))).GetIndex()
	for i := range 3 {
		if err := c.Store(i).WaitForIndex(ctxT(t), last); err != nil {
			t.Fatal(err)
		}
		if got := filesHolding(t, c.DataDir(i), []byte(canary)); len(got) == 0 {
			t.Fatalf("node %d: no file holds the canary before the purge: the test checks nothing", i)
		}
		if err := c.Store(i).Purge(); err != nil {
			t.Fatalf("Purge on node %d: %v", i, err)
		}
		if got := filesHolding(t, c.DataDir(i), []byte(canary)); len(got) > 0 {
			t.Errorf("node %d: after the purge %v still hold the old value", i, got)
		}
	}
	last = c.Apply(t, cmd(put("t", "after", "purge"))).GetIndex()
	for i := range 3 {
		c.Kill(i)
	}
	for i := range 3 {
		c.Restart(i)
	}
	leader := c.WaitForLeader(t)
	if err := leader.WaitForIndex(ctxT(t), last); err != nil {
		t.Fatal(err)
	}
	c.EnsureSame(t)
	mustGet(t, leader, "t", "after", "purge")
	mustGet(t, leader, "keys", "ca", "sealed")
	mustGet(t, leader, "t", "k19", "19")
}
