package raftstore

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/protobuf/proto"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
)

// EditSnapshot rewrites the newest snapshot of a stopped store's data
// directory (Config.DataDir) through edit, which may change a record in
// place and reports whether it did; the rewritten snapshot is saved as a
// new one at the same index and term, so the store restores it on its next
// start. It returns how many records changed. It is how the audit tests
// tamper with a copy of a controller's data, offline: a running store must
// not share the directory.
func EditSnapshot(dataDir string, edit func(r *raftcmdv1.SnapshotRecord) bool) (int, error) {
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(dataDir, "raft"), 3, io.Discard)
	if err != nil {
		return 0, fmt.Errorf("raftstore: open snapshot store: %w", err)
	}
	metas, err := snaps.List()
	if err != nil {
		return 0, fmt.Errorf("raftstore: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return 0, errors.New("raftstore: no snapshot to edit")
	}
	meta, rc, err := snaps.Open(metas[0].ID)
	if err != nil {
		return 0, fmt.Errorf("raftstore: open snapshot %s: %w", metas[0].ID, err)
	}
	st, err := readSnapshot(rc)
	rc.Close()
	if err != nil {
		return 0, fmt.Errorf("raftstore: read snapshot %s: %w", meta.ID, err)
	}
	changed := 0
	txn := st.records.Txn()
	st.records.Root().Walk(func(k []byte, v interface{}) bool {
		r := v.(*Record)
		m := &raftcmdv1.SnapshotRecord{Table: r.Table, Key: r.Key, Value: r.Value, CreateIndex: r.CreateIndex, ModifyIndex: r.ModifyIndex}
		orig := proto.Clone(m)
		if edit(m) && !proto.Equal(orig, m) {
			changed++
			txn.Insert(k, &Record{Table: r.Table, Key: r.Key, Value: m.GetValue(), CreateIndex: m.GetCreateIndex(), ModifyIndex: m.GetModifyIndex()})
		}
		return false
	})
	st.records = txn.Commit()
	// The transport only encodes the legacy peer list stored beside the
	// configuration.
	_, trans := raft.NewInmemTransport("")
	sink, err := snaps.Create(meta.Version, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, trans)
	if err != nil {
		return 0, fmt.Errorf("raftstore: create snapshot: %w", err)
	}
	if err := writeSnapshot(sink, st); err != nil {
		_ = sink.Cancel()
		return 0, fmt.Errorf("raftstore: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return 0, fmt.Errorf("raftstore: save snapshot: %w", err)
	}
	return changed, nil
}

// EditLog rewrites the command entries of a stopped store's Raft log
// (Config.DataDir) through edit, which may change a command in place and
// reports whether it did; it returns how many entries changed. Like
// EditSnapshot it exists to tamper with a copy of a controller's data in
// tests: a replica replaying an edited log rebuilds its state from it.
func EditLog(dataDir string, edit func(index uint64, cmd *raftcmdv1.Command) bool) (int, error) {
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, "raft", "raft.db")})
	if err != nil {
		return 0, fmt.Errorf("raftstore: open log: %w", err)
	}
	defer bolt.Close()
	first, err := bolt.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := bolt.LastIndex()
	if err != nil {
		return 0, err
	}
	changed := 0
	for i := first; i <= last && i > 0; i++ {
		var l raft.Log
		if err := bolt.GetLog(i, &l); err != nil {
			return changed, fmt.Errorf("raftstore: read log %d: %w", i, err)
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 || l.Data[0]&^entryIgnoreUnknown != entryCommand {
			continue
		}
		cmd := new(raftcmdv1.Command)
		if err := proto.Unmarshal(l.Data[1:], cmd); err != nil {
			return changed, fmt.Errorf("raftstore: decode log %d: %w", i, err)
		}
		if !edit(i, cmd) {
			continue
		}
		b, err := proto.Marshal(cmd)
		if err != nil {
			return changed, err
		}
		l.Data = append([]byte{l.Data[0]}, b...)
		if err := bolt.StoreLog(&l); err != nil {
			return changed, fmt.Errorf("raftstore: write log %d: %w", i, err)
		}
		changed++
	}
	return changed, nil
}
