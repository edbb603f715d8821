package deploy

import (
	"context"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// RaftStore adapts a raftstore.Store to Store. Write defaults to the local
// store's Apply (leader only); the controller passes its forwarding write
// so followers reach the leader.
type RaftStore struct {
	S       *raftstore.Store
	WriteFn func(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error)
	// LeaderIndex returns the leader's applied index after verifying its
	// leadership (the controller's ReadIndex); nil means this node is the
	// leader and uses ConsistentRead.
	LeaderIndex func(ctx context.Context) (uint64, error)
}

var _ Store = RaftStore{}

// Write applies cmd through WriteFn, or locally.
func (r RaftStore) Write(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	if r.WriteFn == nil {
		return r.S.Apply(ctx, cmd)
	}
	res, err := r.WriteFn(ctx, cmd)
	if err != nil {
		return nil, err
	}
	// Read your writes: the caller's next local read sees this one.
	if err := r.S.WaitForIndex(ctx, res.GetIndex()); err != nil {
		return nil, err
	}
	return res, nil
}

// Sync waits until the local store has caught up with the leader.
func (r RaftStore) Sync(ctx context.Context) error {
	if r.LeaderIndex == nil {
		return r.S.ConsistentRead(ctx)
	}
	idx, err := r.LeaderIndex(ctx)
	if err != nil {
		return err
	}
	return r.S.WaitForIndex(ctx, idx)
}

// Get reads one record.
func (r RaftStore) Get(table, key string) (raftstore.Record, bool) { return r.S.Get(table, key) }

// List reads a table's records under prefix, sorted by key.
func (r RaftStore) List(table, prefix string) []raftstore.Record { return r.S.List(table, prefix) }

// Watch notifies after every apply.
func (r RaftStore) Watch() (<-chan struct{}, func()) { return r.S.Watch() }
