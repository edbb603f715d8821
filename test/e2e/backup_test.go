package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/backupfile"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// readBackupState verifies a backup file (checksum, format) and decodes its
// state.
func readBackupState(t *testing.T, path string) *raftstore.Snapshot {
	t.Helper()
	b, err := backupfile.Open(path)
	must(t, err)
	defer b.Close()
	must(t, b.Verify())
	v, err := raftstore.ReadState(b.State())
	must(t, err)
	return v
}

// startAgentAt enrols and starts a plain agent (no Docker use) named name
// talking to addrs.
func (e *env) startAgentAt(name string, addrs ...string) *testenv.Proc {
	e.t.Helper()
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "agent", "--ttl", "10m"))
	return e.start(name, "agent", "run", "--name", name, "--data-dir", filepath.Join(e.dir, name), "--controller", strings.Join(addrs, ","), "--token", tok)
}

func (e *env) waitAgent(name, status string) {
	e.t.Helper()
	testenv.WaitFor(e.t, 60*time.Second, func() error {
		as, err := e.agents()
		if err != nil {
			return err
		}
		if as[name].Status != status {
			return fmt.Errorf("%s: %+v", name, as[name])
		}
		return nil
	})
}

// TestE2E_BackupWhileWritingRestoreElsewhere: `kctl cluster snapshot save`
// runs while writes do; the whole cluster is lost; `controller run --init
// --restore` in a fresh data dir gives back every table entry by entry
// (compared with a second backup taken from the restored cluster); at the
// old address the agent reconnects without enrolling again; an agent
// enrolled after the backup is told to enrol again; controllers re-join.
func TestE2E_BackupWhileWritingRestoreElsewhere(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(3)
	var addrs []string
	for _, c := range cs {
		addrs = append(addrs, c.api)
	}
	e.startAgentAt("web-1", addrs...)
	e.waitAgent("web-1", "connected")

	// Writes run during the save.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Go(func() {
		for !stop.Load() {
			if _, err := e.kctl("token", "create", "--role", "agent", "--ttl", "1h"); err != nil {
				t.Errorf("write during the save: %v", err)
				return
			}
			writes.Add(1)
		}
	})
	testenv.WaitFor(t, 30*time.Second, func() error {
		if writes.Load() < 3 {
			return fmt.Errorf("%d writes", writes.Load())
		}
		return nil
	})
	path := filepath.Join(e.dir, "backup", "cluster.kctl")
	must(t, os.MkdirAll(filepath.Dir(path), 0o700))
	out := e.mustKctl("cluster", "snapshot", "save", path)
	stop.Store(true)
	wg.Wait()
	t.Logf("%s(%d writes ran meanwhile)", out, writes.Load())
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	backup := readBackupState(t, path)

	// An agent enrolled after the backup.
	late := e.startAgentAt("web-late", addrs...)
	e.waitAgent("web-late", "connected")

	// The whole cluster is lost.
	for _, c := range cs {
		c.p.Kill()
	}
	// Restored at c1's addresses, in another data dir.
	dir := filepath.Join(e.dir, "restored-c1")
	e.start("restored-c1", "controller", "run", "--name", "c1", "--data-dir", dir, "--listen", cs[0].api, "--raft-listen", cs[0].raft, "--init", "--restore", path, "--kek-file", filepath.Join(cs[0].dir, "kek"), "--heartbeat-interval", "1s")
	// The old admin credentials still work (same CA); the agent reconnects
	// without enrolling again.
	e.waitAgent("web-1", "connected")
	select {
	case <-late.Done():
		if o := late.Output(); !strings.Contains(o, "enrolled after that backup") || !strings.Contains(o, "enrol it again") {
			t.Errorf("the agent enrolled after the backup exited without saying why:\n%s", o)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("the agent enrolled after the backup keeps running:\n%s", late.Output())
	}

	// Every table, entry by entry: a backup of the restored cluster holds
	// what the first held, but for what the restore itself changes
	// (controllers, their revocations, presence, the admin's new
	// certificate, audit entries after it).
	again := filepath.Join(e.dir, "backup", "restored.kctl")
	e.mustKctl("cluster", "snapshot", "save", again)
	restored := readBackupState(t, again)
	changes := map[string]bool{"nodes": true, "revoked": true, "presence": true, "operators": true, "audit": true, "audit-chain": true, "chain-heads": true, "agents": true}
	tables := map[string]int{}
	backup.Each(func(table string, r raftstore.Record) bool {
		tables[table]++
		if changes[table] {
			return true
		}
		got, ok := restored.Get(table, r.Key)
		if !ok || !bytes.Equal(got.Value, r.Value) || got.ModifyIndex != r.ModifyIndex {
			t.Errorf("%s/%s not restored as it was", table, r.Key)
		}
		return true
	})
	t.Logf("tables compared: %v", tables)
	for _, r := range append(backup.List("audit", ""), backup.List("audit-chain", "")...) {
		if got, ok := restored.Get(r.Table, r.Key); !ok || !bytes.Equal(got.Value, r.Value) {
			t.Errorf("%s/%s not restored", r.Table, r.Key)
		}
	}
	for _, r := range backup.List("agents", "") {
		if _, ok := restored.Get("agents", r.Key); !ok {
			t.Errorf("agents/%s not restored", r.Key)
		}
	}
	for _, r := range backup.List("operators", "") {
		if _, ok := restored.Get("operators", r.Key); !ok {
			t.Errorf("operators/%s not restored", r.Key)
		}
	}
	if _, ok := restored.Get("agents", "web-late"); ok {
		t.Errorf("the agent enrolled after the backup exists after the restore")
	}

	// Controllers re-join with fresh data dirs.
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "controller", "--uses", "2"))
	for _, c := range cs[1:] {
		e.start("rejoined-"+c.name, "controller", "run", "--name", c.name, "--data-dir", filepath.Join(e.dir, "rejoined-"+c.name), "--listen", c.api, "--raft-listen", c.raft, "--join", cs[0].api, "--token", tok, "--heartbeat-interval", "1s")
	}
	e.waitVoters(3)
}

// waitVoters waits until n voters are up and one leads.
func (e *env) waitVoters(n int) {
	e.t.Helper()
	testenv.WaitFor(e.t, 60*time.Second, func() error {
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
}

// TestE2E_ForceNewClusterAfterLosingTwo: two of three controllers are lost
// for good; `controller run --force-new-cluster` on the survivor starts a
// one-node cluster from its data; two new controllers join it with fresh
// data dirs; the cluster serves writes and the agent reconnects.
func TestE2E_ForceNewClusterAfterLosingTwo(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(3)
	e.startAgentAt("web-1", cs[0].api, cs[1].api, cs[2].api)
	e.waitAgent("web-1", "connected")
	e.mustKctl("token", "create", "--role", "agent", "--ttl", "1h")
	before := e.mustKctl("token", "list")

	cs[1].p.Kill()
	cs[2].p.Kill()
	// The survivor alone has no quorum: writes fail.
	if _, err := e.kctl("token", "create", "--role", "agent", "--timeout", "3s"); err == nil {
		t.Fatalf("a write succeeded without a quorum")
	}
	must(t, cs[0].p.Stop())
	e.start("forced-c1", "controller", "run", "--name", "c1", "--data-dir", cs[0].dir, "--listen", cs[0].api, "--raft-listen", cs[0].raft, "--force-new-cluster", "--heartbeat-interval", "1s")
	e.waitVoters(1)
	got := e.mustKctl("token", "list")
	for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
		if !strings.Contains(got, line) {
			t.Errorf("token %q lost in the recovery:\n%s", line, got)
		}
	}
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "controller", "--uses", "2"))
	for _, name := range []string{"c4", "c5"} {
		e.start(name, "controller", "run", "--name", name, "--data-dir", filepath.Join(e.dir, name), "--listen", testenv.FreeAddr(t), "--raft-listen", testenv.FreeAddr(t), "--join", cs[0].api, "--token", tok, "--heartbeat-interval", "1s")
	}
	e.waitVoters(3)
	e.waitAgent("web-1", "connected")
	e.mustKctl("token", "create", "--role", "agent", "--ttl", "1h")
}
