package controller

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// clusterProtocol is the cluster's protocol version in v: the lowest of its
// voters' (a voter of a build older than versioning counts as 1), or this
// build's when v holds no voter yet.
func clusterProtocol(v *raftstore.Snapshot) int {
	var vs []uint32
	for _, n := range schema.Nodes.Values(v, "") {
		if n.GetVoter() {
			vs = append(vs, n.GetProtocolVersion())
		}
	}
	return protocol.ClusterVersion(vs)
}

// ClusterProtocol is the cluster's protocol version as this node knows it.
func (c *Controller) ClusterProtocol() int { return clusterProtocol(c.store.View()) }

// Supports reports whether every voter runs a build that knows feature (a
// protocol version, e.g. protocol.FeatureVersioned): write what older builds
// cannot read only when it does.
func (c *Controller) Supports(feature int) bool {
	return protocol.Supports(c.ClusterProtocol(), feature)
}

// checkProtocol refuses to start a build older than the cluster it holds
// the state of (a downgrade): it could not read what the cluster writes.
func (c *Controller) checkProtocol() error {
	if cv := c.ClusterProtocol(); cv > protocol.Current() {
		return fmt.Errorf("%w: the cluster runs protocol version %d and this build speaks %d: start this controller with a build of protocol %d or later", ErrDataDir, cv, protocol.Current(), cv)
	}
	return nil
}

// checkJoinProtocol is the cluster's side of a controller's join: a joiner
// older than the cluster's version is refused (it could not read what the
// cluster writes), and so is one that does not understand the cluster's
// version (it says which it understands).
func checkJoinProtocol(v *raftstore.Snapshot, req *controllerv1.JoinRequest) error {
	cv := clusterProtocol(v)
	peer := protocol.Normalize(req.GetProtocolVersion())
	if err := protocol.CheckJoiner(cv, peer); err != nil {
		return status.Errorf(codes.FailedPrecondition, "controller: refusing controller %q: %v", req.GetName(), err)
	}
	if o := req.GetProtocolOldest(); o != 0 && int(o) > cv {
		return status.Errorf(codes.FailedPrecondition, "controller: refusing controller %q: it understands protocol versions %d to %d, the cluster runs %d: join it with a build that understands %d, or upgrade the cluster one version at a time first", req.GetName(), o, peer, cv, cv)
	}
	return nil
}

// recordProtocol records this build's protocol version in this node's
// record once it differs (first start of a new build), retrying until it
// is written.
func (c *Controller) recordProtocol(ctx context.Context) {
	for {
		err := c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
			rec, ver, ok := schema.Nodes.Get(v, c.cfg.Name)
			if !ok || rec.GetProtocolVersion() == uint32(protocol.Current()) {
				return nil, nil
			}
			rec.ProtocolVersion = uint32(protocol.Current())
			return &raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{schema.Nodes.IfVersion(c.cfg.Name, ver)}, Mutations: []*raftcmdv1.Mutation{schema.Nodes.Put(c.cfg.Name, rec)}}, nil
		})
		if err == nil {
			if _, _, ok := schema.Nodes.Get(c.store.View(), c.cfg.Name); ok {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// watchHalt stops serving once the store halts: this node met a log entry
// or a snapshot its build cannot read. It says so in the log and in its
// health (NOT_SERVING), ends its agent sessions (they reconnect elsewhere)
// and refuses every call (refuseHalted) until it is upgraded and
// restarted.
func (c *Controller) watchHalt(ctx context.Context) {
	ch, stop := c.store.Watch()
	defer stop()
	for {
		if err := c.store.Halted(); err != nil {
			c.log.Error("this controller cannot read the cluster's data and stopped serving: upgrade it and restart it", "err", err)
			c.updateServing() // NOT_SERVING: serving() sees the halt
			// Agents move to a controller that can serve them.
			c.disp.Close()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// refuseHalted refuses calls, but health checks, once the store halted.
func (c *Controller) refuseHalted(fullMethod string) error {
	if err := c.store.Halted(); err != nil && fullMethod[:min(len(fullMethod), 16)] != "/grpc.health.v1." {
		return status.Errorf(codes.Unavailable, "controller %s: %v", c.cfg.Name, err)
	}
	return nil
}

func (c *Controller) haltedUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := c.refuseHalted(info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (c *Controller) haltedStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := c.refuseHalted(info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
