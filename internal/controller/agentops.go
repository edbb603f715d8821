package controller

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/apierr"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/rpcerr"
	"github.com/kctl-dev/kctl/internal/schema"
)

// The typed agent operations kctl runs outside a deploy (`kctl agents
// ping|describe`, `kctl build pull|deliver`, `kctl prune`), each with its
// own line in Policy; SendCommand, which runs anything, is an admin's
// debugging tool.

// maxPingPayload bounds a ping's payload.
const maxPingPayload = 1 << 10

// describeWait bounds how long DescribeAgent with fresh waits for facts.
const describeWait = 5 * time.Second

// PingAgent sends a no-op through the agent's command stream and waits for
// its answer. Errors: NotFound, InvalidArgument, DeadlineExceeded.
func (s *api) PingAgent(ctx context.Context, req *controllerv1.PingAgentRequest) (*controllerv1.PingAgentResponse, error) {
	if len(req.GetPayload()) > maxPingPayload {
		return nil, status.Errorf(codes.InvalidArgument, "controller: a ping payload of %d bytes is over the limit of %d", len(req.GetPayload()), maxPingPayload)
	}
	rec, err := s.c.runOp(ctx, req.GetAgent(), &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: req.GetPayload()}}})
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	return &controllerv1.PingAgentResponse{CommandId: rec.GetId(), Controller: rec.GetController(), Payload: rec.GetResult().GetDetail()}, nil
}

// freshFacts asks a connected agent for its current facts, nil if it does
// not answer in describeWait.
func (c *Controller) freshFacts(ctx context.Context, agent string) *agentv1.Facts {
	ctx, cancel := context.WithTimeout(ctx, describeWait)
	defer cancel()
	rec, err := c.runOp(ctx, agent, &agentv1.Operation{Op: &agentv1.Operation_GatherFacts{GatherFacts: &agentv1.GatherFacts{}}})
	if err != nil || !rec.GetResult().GetOk() {
		return nil
	}
	return rec.GetResult().GetFacts()
}

// PullImage has an agent pull a service's image, unless another operator
// or a running deploy holds the service's deploy lock. Errors: NotFound,
// InvalidArgument, FailedPrecondition (DEPLOY_LOCK_HELD), DeadlineExceeded.
func (s *api) PullImage(ctx context.Context, req *controllerv1.PullImageRequest) (*controllerv1.AgentOperationResponse, error) {
	p := req.GetPull()
	if p.GetImage() == "" || p.GetService() == "" {
		return nil, status.Error(codes.InvalidArgument, "controller: a pull needs an image and a service")
	}
	return s.c.lockedOp(ctx, req.GetAgent(), p.GetService(), req.GetDestination(), &agentv1.Operation{Op: &agentv1.Operation_PullImage{PullImage: p}})
}

// Prune has an agent prune a service's old containers and images, under
// PullImage's lock rule.
func (s *api) Prune(ctx context.Context, req *controllerv1.PruneRequest) (*controllerv1.AgentOperationResponse, error) {
	p := req.GetPrune()
	if p.GetService() == "" || p.GetRetain() < 1 {
		return nil, status.Error(codes.InvalidArgument, "controller: a prune needs a service and retain of at least 1")
	}
	return s.c.lockedOp(ctx, req.GetAgent(), p.GetService(), req.GetDestination(), &agentv1.Operation{Op: &agentv1.Operation_Prune{Prune: p}})
}

// lockedOp runs op on agent as Kamal runs a command under its deploy lock:
// refused while the lock of service/destination is held by a running
// deploy or by another operator; a lock the caller took by hand (`kctl lock
// acquire`) lets its holder through. The command is recorded only if the
// lock is still as checked (a precondition in the same Raft write).
func (c *Controller) lockedOp(ctx context.Context, agent, service, dest string, op *agentv1.Operation) (*controllerv1.AgentOperationResponse, error) {
	id, err := pki.RemoteIdentity(ctx)
	if err != nil {
		return nil, err
	}
	for {
		if err := c.linearize(ctx); err != nil {
			return nil, rpcerr.Status(err)
		}
		key := schema.LockKey(service, dest)
		pre := schema.Locks.IfAbsent(key)
		if l, ver, held := schema.Locks.Get(c.store.View(), key); held {
			if l.GetDeployId() != "" || l.GetHolder() != id.Name {
				return nil, apierr.LockHeld(l)
			}
			pre = schema.Locks.IfVersion(key, ver)
		}
		rec, err := c.runOp(ctx, agent, op, pre)
		if errors.Is(err, errConflict) {
			continue // the lock changed between the check and the write
		}
		if err != nil {
			return nil, rpcerr.Status(err)
		}
		return &controllerv1.AgentOperationResponse{Command: redactCommand(rec)}, nil
	}
}

// runOp records op for agent (if the preconditions hold) and waits for the
// result.
func (c *Controller) runOp(ctx context.Context, agent string, op *agentv1.Operation, pre ...*raftcmdv1.Precondition) (*controllerv1.CommandRecord, error) {
	if agent == "" {
		return nil, status.Error(codes.InvalidArgument, "controller: no agent named")
	}
	cid, err := c.sendCommand(ctx, agent, "", op, pre...)
	if err != nil {
		return nil, err
	}
	return c.WaitResult(ctx, cid)
}
