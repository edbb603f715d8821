package raftstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// AddNonvoter adds a member that receives the log but does not vote;
// leader only. A joining node catches up as a nonvoter, so a slow joiner
// never costs the quorum; AddVoter promotes it. It is idempotent: a server
// already present with the same ID and address (voter or not) is left
// alone, and a stale entry with the same ID or address is removed first.
func (s *Store) AddNonvoter(ctx context.Context, id, addr string) error {
	servers, err := s.leaderServers(ctx)
	if err != nil {
		return err
	}
	for _, srv := range servers {
		sameID, sameAddr := srv.ID == raft.ServerID(id), srv.Address == raft.ServerAddress(addr)
		switch {
		case sameID && sameAddr:
			return nil
		case sameID || sameAddr:
			s.logger.Info("raftstore: removing stale server before adding", "id", srv.ID, "address", srv.Address)
			if err := s.wait(ctx, s.raft.RemoveServer(srv.ID, 0, 0)); err != nil {
				return fmt.Errorf("raftstore: remove stale server %s: %w", srv.ID, err)
			}
		}
	}
	if err := s.wait(ctx, s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0)); err != nil {
		return fmt.Errorf("raftstore: add nonvoter %s: %w", id, err)
	}
	return nil
}

// Status is this node's Raft progress, for health reports.
type Status struct {
	// State is leader, follower, candidate or shutdown.
	State string
	Term  uint64
	// LastContact is how long ago this node heard from the leader (0 on
	// the leader, -1 never).
	LastContact time.Duration
	// AppliedIndex is the FSM's; LastLogIndex and CommitIndex raft's.
	AppliedIndex, LastLogIndex, CommitIndex uint64
	// SnapshotIndex is the index of the latest snapshot.
	SnapshotIndex uint64
}

// Status reports this node's Raft progress.
func (s *Store) Status() Status {
	st := Status{
		State:        s.raft.State().String(),
		Term:         s.currentTerm(),
		AppliedIndex: s.AppliedIndex(),
		LastLogIndex: s.raft.LastIndex(),
		CommitIndex:  s.raft.CommitIndex(),
	}
	if s.raft.State() == raft.Leader {
		st.LastContact = 0
	} else if lc := s.raft.LastContact(); lc.IsZero() {
		st.LastContact = -1
	} else {
		st.LastContact = time.Since(lc)
	}
	st.State = stateName(s.raft.State())
	st.SnapshotIndex, _ = strconv.ParseUint(s.raft.Stats()["last_snapshot_index"], 10, 64)
	return st
}

func (s *Store) currentTerm() uint64 {
	t, _ := strconv.ParseUint(s.raft.Stats()["term"], 10, 64)
	return t
}

func stateName(st raft.RaftState) string {
	switch st {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}
