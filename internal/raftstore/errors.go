package raftstore

import (
	"errors"
	"fmt"
)

var (
	// ErrNotLeader is returned (wrapped in a *NotLeaderError) when a write,
	// a membership change or a consistent read reaches a follower.
	ErrNotLeader = errors.New("raftstore: not leader")
	// ErrAlreadyBootstrapped is returned by Bootstrap when the data directory
	// already holds Raft state.
	ErrAlreadyBootstrapped = errors.New("raftstore: already bootstrapped")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("raftstore: closed")
	// ErrLeadershipLost is returned by Apply when this node lost leadership
	// before the command committed. The command may still commit under the
	// next leader: retry with the same request_id.
	ErrLeadershipLost = errors.New("raftstore: leadership lost while committing; the write may still commit")
	// ErrInvalidCommand is returned by Apply for a command that can never
	// apply (empty table, unknown mutation, no mutations).
	ErrInvalidCommand = errors.New("raftstore: invalid command")
	// ErrCommandTooLarge is returned by Apply for a command whose encoding
	// exceeds MaxCommandBytes.
	ErrCommandTooLarge = errors.New("raftstore: command too large")
	// ErrInvalidConfig is returned by Open for an unusable Config.
	ErrInvalidConfig = errors.New("raftstore: invalid config")
	// ErrDataDirInUse is returned by Open when another process holds the
	// data directory's log store.
	ErrDataDirInUse = errors.New("raftstore: data dir in use")
	// ErrIncompatible is returned once this node met a log entry or a
	// snapshot written by a newer build (a newer command format, entry type
	// or field): it stops applying the log and serving until upgraded.
	ErrIncompatible = errors.New("raftstore: the cluster's data needs a newer build")
	// ErrPeerRejected is returned when a raft peer's certificate fails
	// verification.
	ErrPeerRejected = errors.New("raftstore: peer rejected")
)

// NotLeaderError is returned when an operation that needs the leader reaches
// a follower. LeaderID and LeaderAddr name the leader this node knows of;
// both are empty when no leader is known (an election is in progress).
// errors.Is(err, ErrNotLeader) is true.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" && e.LeaderAddr == "" {
		return "raftstore: not leader (no leader known)"
	}
	return fmt.Sprintf("raftstore: not leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

// Is reports whether target is ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
