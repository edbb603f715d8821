package dispatcher

import (
	"context"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// MemCluster is the in-memory twin of a controller's Cluster: a
// raftstore.MemStore (the real FSM, no Raft) whose writes apply at once, and
// a fixed list of controller addresses.
type MemCluster struct {
	*raftstore.MemStore
	// Addrs is what Controllers returns.
	Addrs []string
	// Dead names the controllers Alive reports dead.
	Dead map[string]bool
}

var _ Cluster = (*MemCluster)(nil)

// NewMemCluster returns an empty MemCluster naming addrs as the controllers.
func NewMemCluster(addrs ...string) *MemCluster {
	return &MemCluster{MemStore: raftstore.NewMemStore(), Addrs: addrs}
}

// Write applies cmd.
func (m *MemCluster) Write(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	return m.Apply(ctx, cmd)
}

// Controllers returns Addrs.
func (m *MemCluster) Controllers() []string { return m.Addrs }

// Alive reports whether name is not in Dead.
func (m *MemCluster) Alive(name string) bool { return !m.Dead[name] }
