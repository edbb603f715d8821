package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// Purge removes this node's older state from its disk: it takes a snapshot
// of the current state, deletes every log entry the snapshot covers (not
// only those beyond TrailingLogs) and every older snapshot, and rewrites
// raft.db compacted (boltSwap.rewrite: bbolt leaves deleted entries in its
// free pages). The controller
// calls it after replacing key material in the state (a data key or
// key-encryption key rotation, the sealing of a CA key that an older
// build stored in plaintext), so the old values leave raft.db and the
// snapshot directory (docs/security.md). A follower that lagged behind the
// purged entries is sent the snapshot instead.
func (s *Store) Purge() error {
	if s.isClosed() {
		return ErrClosed
	}
	if err := s.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("raftstore: purge: snapshot: %w", err)
	}
	metas, err := s.snaps.List()
	if err != nil {
		return fmt.Errorf("raftstore: purge: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return errors.New("raftstore: purge: no snapshot was taken")
	}
	newest := metas[0]
	first, err := s.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raftstore: purge: %w", err)
	}
	if first > 0 && first <= newest.Index {
		if err := s.logs.DeleteRange(first, newest.Index); err != nil {
			return fmt.Errorf("raftstore: purge: delete log entries %d-%d: %w", first, newest.Index, err)
		}
	}
	if err := s.bolt.rewrite(); err != nil {
		return fmt.Errorf("raftstore: purge: %w", err)
	}
	// The file store lists every snapshot it retains, newest first; one
	// being written meanwhile is newer and not listed.
	dir := filepath.Join(s.cfg.DataDir, "raft", "snapshots")
	for _, m := range metas[1:] {
		if err := os.RemoveAll(filepath.Join(dir, m.ID)); err != nil {
			return fmt.Errorf("raftstore: purge: remove snapshot %s: %w", m.ID, err)
		}
	}
	s.logger.Info("raftstore: purged the log and older snapshots", "snapshot_index", newest.Index, "log_entries_from", first)
	return nil
}
