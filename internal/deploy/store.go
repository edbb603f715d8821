// Package deploy runs deploys on the controllers. A deploy is submitted by
// kctl with config and secrets already resolved, recorded in Raft together
// with the plan internal/scheduler makes of it and the service's deploy
// lock, and then driven step by step by the Raft leader (Runner), which
// records each step's result. The recorded plan holds every step's
// operation with its secrets replaced by references into the deploy's
// secrets record (redact.go), so the Runner sends what was planned at submit
// and never plans again. A new leader resumes every running deploy from
// those records; agents carry out each step idempotently, so a step that was
// sent twice runs once in effect.
//
// Its tables (deploys, deploy-secrets, deploy-steps, locks, audit) are
// declared with the others in internal/schema.
package deploy

import (
	"context"
	"errors"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/locks"
	"github.com/kctl-dev/kctl/internal/scheduler"
	"github.com/kctl-dev/kctl/internal/schema"
)

// ErrLocked is returned when a deploy lock is held by someone else.
var ErrLocked = errors.New("deploy: " + locks.HeldPhrase)

// ErrNotFound is returned for an unknown deploy.
var ErrNotFound = errors.New("deploy: not found")

// Store is the replicated store as the deploy service sees it. Write may be
// called on any controller (followers forward to the leader); reads
// (schema.Reader) are local and may lag the leader briefly.
type Store interface {
	Write(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error)
	schema.Reader
	// Watch returns a channel that receives (coalesced) after every apply,
	// and a function that stops the watch.
	Watch() (<-chan struct{}, func())
	// Sync makes the local reads that follow linearizable: it returns once
	// this node has applied everything committed when Sync was called.
	Sync(ctx context.Context) error
}

// Agents sends operations to agents and reports their results; the
// controller's session dispatcher implements it.
type Agents interface {
	scheduler.Fleet
	// Send records op for agent under id; sending the same id again is a
	// no-op, so a resumed deploy may call it again safely.
	Send(ctx context.Context, agent, id string, op *agentv1.Operation) error
	// Result reports the command's result once the agent has answered.
	Result(agent, id string) (*agentv1.Result, bool)
	// Forget deletes commands, delivered or not, once their deploy has
	// ended: an agent that reconnects later must not run a step of a
	// finished deploy, and the secrets they carry must not outlive it.
	Forget(ctx context.Context, cmds []AgentCommand) error
}

// AgentCommand names one command: the agent and the id passed to Send.
type AgentCommand struct{ Agent, ID string }
