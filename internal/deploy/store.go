// Package deploy runs deploys on the controllers. A deploy is submitted by
// kctl with config and secrets already resolved, recorded in Raft together
// with the plan internal/scheduler makes of it and the service's deploy
// lock, and then driven step by step by the Raft leader (Runner), which
// records each step's result. A new leader resumes every running deploy from
// those records; agents carry out each step idempotently, so a step that was
// sent twice runs once in effect.
//
// Tables (all values are deployv1 protobuf messages):
//
//	deploys         <id>                  Record (secrets removed)
//	deploy-secrets  <id>                  Request with secrets, deleted when the deploy ends
//	deploy-steps    <id>/<step id>        StepRecord
//	locks           <service>[-<dest>]    LockRecord
//	audit           (appended)            AuditEntry
package deploy

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/locks"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

// Table names.
const (
	TableDeploys = "deploys"
	TableSecrets = "deploy-secrets"
	TableSteps   = "deploy-steps"
	TableLocks   = "locks"
	TableAudit   = "audit"
)

// ErrLocked is returned when a deploy lock is held by someone else.
var ErrLocked = errors.New("deploy: " + locks.HeldPhrase)

// ErrNotFound is returned for an unknown deploy.
var ErrNotFound = errors.New("deploy: not found")

// KV is one stored record.
type KV struct {
	Key     string
	Value   []byte
	Version uint64
}

// Store is the replicated store as the deploy service sees it. Write may be
// called on any controller (followers forward to the leader); reads are
// local and may lag the leader briefly.
type Store interface {
	Write(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error)
	Get(table, key string) (KV, bool)
	List(table, prefix string) []KV
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

func get[M proto.Message](s Store, table, key string, m M) (uint64, bool, error) {
	kv, ok := s.Get(table, key)
	if !ok {
		return 0, false, nil
	}
	if err := proto.Unmarshal(kv.Value, m); err != nil {
		return 0, false, fmt.Errorf("deploy: decode %s/%s: %w", table, key, err)
	}
	return kv.Version, true, nil
}

func put(table, key string, m proto.Message) *raftcmdv1.Mutation {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("deploy: marshal %T: %v", m, err)) // only on a programming error
	}
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Put{Put: &raftcmdv1.Put{Table: table, Key: key, Value: b}}}
}

func appendTo(table string, m proto.Message) *raftcmdv1.Mutation {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("deploy: marshal %T: %v", m, err))
	}
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: table, Value: b}}}
}

func del(table, key string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Delete{Delete: &raftcmdv1.Delete{Table: table, Key: key}}}
}

func absent(table, key string) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: table, Key: key, Check: &raftcmdv1.Precondition_Absent{Absent: true}}
}

func atVersion(table, key string, v uint64) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: table, Key: key, Check: &raftcmdv1.Precondition_Version{Version: v}}
}
