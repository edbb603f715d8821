package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// StateInfo describes a state written by WriteState.
type StateInfo struct {
	// Index is the last log index the state includes.
	Index uint64
	// Records is the number of records, every table together.
	Records int
}

// WriteState writes the local state as a snapshot stream (the format raft
// snapshots use: see raftcmd.proto's SnapshotHeader), for a backup. Call
// ConsistentRead first on the leader to include every acknowledged write.
// The state is an immutable version: writes applied meanwhile are not in
// it.
func (s *Store) WriteState(w io.Writer) (StateInfo, error) {
	if s.isClosed() {
		return StateInfo{}, ErrClosed
	}
	if err := s.fsm.haltErr(); err != nil {
		return StateInfo{}, err
	}
	st := s.fsm.state()
	if err := writeSnapshot(w, st); err != nil {
		return StateInfo{}, fmt.Errorf("raftstore: write state: %w", err)
	}
	return StateInfo{Index: st.index, Records: st.records.Len()}, nil
}

// ReadState decodes a snapshot stream written by WriteState into a
// read-only view, checking its framing, format and completeness.
func ReadState(r io.Reader) (*Snapshot, error) {
	st, err := readSnapshot(r)
	if err != nil {
		return nil, fmt.Errorf("raftstore: read state: %w", err)
	}
	return &Snapshot{records: st.records, index: st.index}, nil
}

// Seed prepares an empty data directory to start from a saved state (a
// backup): it writes the state as a raft snapshot whose configuration holds
// one voter, nodeID at raftAddr. Open on that directory then restores the
// state and, alone in its configuration, elects itself: a one-node cluster
// holding every record of the backup at the backup's applied index. It
// refuses a directory that already holds raft state.
func Seed(dataDir, nodeID, raftAddr string, state io.Reader) (StateInfo, error) {
	st, err := readSnapshot(state)
	if err != nil {
		return StateInfo{}, fmt.Errorf("raftstore: seed: %w", err)
	}
	if st.index == 0 {
		return StateInfo{}, errors.New("raftstore: seed: the state has no applied index")
	}
	cfg := Config{NodeID: nodeID, DataDir: dataDir}
	bolt, snaps, _, err := openStorage(cfg, newHCLog(slog.New(slog.DiscardHandler)))
	if err != nil {
		return StateInfo{}, err
	}
	defer bolt.Close()
	if ok, err := raft.HasExistingState(bolt, bolt, snaps); err != nil || ok {
		return StateInfo{}, fmt.Errorf("%w: seed: %s already holds raft state", ErrAlreadyBootstrapped, filepath.Join(dataDir, "raft"))
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(nodeID), Address: raft.ServerAddress(raftAddr)}}}
	// The transport only encodes the legacy peer list (the address).
	_, tr := raft.NewInmemTransport(raft.ServerAddress(raftAddr))
	defer tr.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, st.index, 1, conf, st.index, tr)
	if err != nil {
		return StateInfo{}, fmt.Errorf("raftstore: seed: %w", err)
	}
	if err := writeSnapshot(sink, st); err != nil {
		_ = sink.Cancel()
		return StateInfo{}, fmt.Errorf("raftstore: seed: %w", err)
	}
	if err := sink.Close(); err != nil {
		return StateInfo{}, fmt.Errorf("raftstore: seed: %w", err)
	}
	return StateInfo{Index: st.index, Records: st.records.Len()}, nil
}
