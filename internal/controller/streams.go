package controller

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/dispatcher"
	"github.com/kctl-dev/kctl/internal/relay"
	"github.com/kctl-dev/kctl/internal/schema"
)

// relayCluster is the stream relay's view of this controller: the agent
// sessions it holds, presence, the other controllers and the audit.
type relayCluster struct{ c *Controller }

var _ relay.Cluster = relayCluster{}

// OpenTunnel asks a session held here to dial a Tunnel.
func (r relayCluster) OpenTunnel(agent, id string) error {
	err := r.c.disp.OpenTunnel(agent, id)
	if errors.Is(err, dispatcher.ErrNotHeld) {
		return relay.ErrNotHeld
	}
	return err
}

// Holder names the controller whose fresh presence record holds the agent.
func (r relayCluster) Holder(agent string) string {
	p, ok := r.c.disp.Presence(r.c.store.View())[agent]
	if !ok || !p.Connected {
		return ""
	}
	return p.Controller
}

// Peer returns a connection to another controller.
func (r relayCluster) Peer(name string) (grpc.ClientConnInterface, error) {
	return r.c.peers.conn(name)
}

// Audit appends e to the audit table through the leader.
func (r relayCluster) Audit(ctx context.Context, e *deployv1.AuditEntry) {
	if _, err := r.c.apply(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Audit.Append(e)}}); err != nil {
		r.c.log.Warn("recording an exec in the audit failed", "err", err, "action", e.GetAction(), "host", e.GetHost())
	}
}
