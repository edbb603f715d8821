package raftstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
)

// MemStore is the in-memory twin of a Store, for unit tests of the packages
// built on it: the same FSM applies each command at once (preconditions,
// request ids, appends and the put log behave as on a Store), with no Raft,
// no disk and no network. It is always the leader. It is safe for
// concurrent use.
type MemStore struct {
	fsm    *fsm
	notify notifier
	// mu serializes Apply, which numbers the entries.
	mu    sync.Mutex
	index uint64
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	m := &MemStore{}
	m.fsm = newFSM(m.notify.applied)
	return m
}

// Apply applies cmd as the next log entry and returns its Result, as
// Store.Apply does on the leader.
func (m *MemStore) Apply(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("raftstore: apply: %w", err)
	}
	if err := checkCommand(cmd); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommand, err)
	}
	c := proto.Clone(cmd).(*raftcmdv1.Command)
	if c.GetUnixNanos() == 0 {
		c.UnixNanos = time.Now().UnixNano()
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("raftstore: encode command: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.index++
	res := m.fsm.Apply(&raft.Log{Index: m.index, Type: raft.LogCommand, Data: append([]byte{entryCommand}, body...)})
	if r, ok := res.(*raftcmdv1.Result); ok {
		return r, nil
	}
	return nil, m.fsm.haltErr()
}

// View returns an immutable view of the current state.
func (m *MemStore) View() *Snapshot {
	st := m.fsm.state()
	return &Snapshot{records: st.records, index: st.index}
}

// Get returns the record table/key.
func (m *MemStore) Get(table, key string) (Record, bool) { return m.View().Get(table, key) }

// List returns table's records whose key starts with prefix, sorted by key.
func (m *MemStore) List(table, prefix string) []Record { return m.View().List(table, prefix) }

// AppliedIndex is the index of the last command applied.
func (m *MemStore) AppliedIndex() uint64 { return m.fsm.state().index }

// Watch notifies after state changes, as Store.Watch.
func (m *MemStore) Watch() (<-chan struct{}, func()) { return m.notify.watch() }

// PutSince reports the keys of table written after index, as
// Store.PutSince.
func (m *MemStore) PutSince(table string, index uint64) ([]string, bool) {
	return m.fsm.puts.since(table, index)
}
