// Package schema declares every table of the replicated store
// (internal/raftstore) in one place: its name, the protobuf message its
// values hold and how its keys are made, with the typed accessors (read,
// put, delete, append, preconditions) written once for all of them. The
// controller and the deploy service read and write the store only through
// these tables.
//
// To add a table, declare it below with the message its values hold and
// document its key; raftstore itself knows nothing of tables beyond their
// names.
package schema

import (
	"google.golang.org/protobuf/types/known/emptypb"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/locks"
)

// The controller's tables (internal/controller).
var (
	// Cluster holds the cluster CA under KeyCA.
	Cluster = Table[*controllerv1.ClusterRecord]{name: "cluster"}
	// Tokens maps a join token's id to the token.
	Tokens = Table[*controllerv1.TokenRecord]{name: "tokens"}
	// Nodes maps a controller's name to the controller.
	Nodes = Table[*controllerv1.NodeRecord]{name: "nodes"}
	// Agents maps an agent's name to the agent.
	Agents = Table[*controllerv1.AgentRecord]{name: "agents"}
	// Operators maps an operator's name to the operator.
	Operators = Table[*controllerv1.OperatorRecord]{name: "operators"}
	// Revoked holds the serials of revoked certificates (empty values).
	Revoked = Table[*emptypb.Empty]{name: "revoked"}
	// Commands maps CommandKey(agent, id) to a command addressed to agent.
	Commands = Table[*controllerv1.CommandRecord]{name: "commands"}
	// Presence maps a controller's name to the agent sessions it holds.
	Presence = Table[*controllerv1.PresenceRecord]{name: "presence"}
	// RemovedNodes maps the name of a controller removed from the cluster
	// to when it was last removed (kept when a replacement joins).
	RemovedNodes = Table[*controllerv1.RemovedNodeRecord]{name: "removed-nodes"}
)

// The deploy service's tables (internal/deploy).
var (
	// Deploys maps a deploy's id to the deploy, secrets replaced by
	// references into its Secrets record.
	Deploys = Table[*deployv1.Record]{name: "deploys"}
	// Secrets maps a deploy's id to its request with its secrets sealed by
	// kctl to each host's agent (placeholders and per-host ciphertext,
	// internal/sealbox); deleted when the deploy ends.
	Secrets = Table[*deployv1.Request]{name: "deploy-secrets"}
	// Steps maps StepKey(deploy id, step id) to a step's progress.
	Steps = Table[*deployv1.StepRecord]{name: "deploy-steps"}
	// Locks maps LockKey(service, destination) to a deploy lock.
	Locks = Table[*deployv1.LockRecord]{name: "locks"}
	// Audit is the audit history, hash-chained (raftstore.AppendKey keys,
	// in log order); entries written before the chain are in table "audit".
	Audit = Chain[*deployv1.AuditEntry]{name: "audit-chain", legacy: Table[*deployv1.AuditEntry]{name: "audit"}}
	// AuditCheckpoint holds, under KeyCheckpoint, the signed anchor of the
	// audit chain once retention has dropped its oldest links.
	AuditCheckpoint = Table[*deployv1.AuditCheckpoint]{name: "audit-checkpoint"}
	// Desired maps DesiredKey(service, destination, role, host) to what the
	// operator wants of that role there: lifecycle commands set it, a deploy
	// resets it to running.
	Desired = Table[*deployv1.DesiredState]{name: "desired"}
)

// KeyCA is the Cluster table's one key.
const KeyCA = "ca"

// KeyCheckpoint is the AuditCheckpoint table's one key.
const KeyCheckpoint = "checkpoint"

// CommandKey is the Commands key of command id for agent: an agent's
// commands share the prefix "<agent>/".
func CommandKey(agent, id string) string { return agent + "/" + id }

// StepKey is the Steps key of a deploy's step: a deploy's steps share the
// prefix "<deploy id>/".
func StepKey(deployID, stepID string) string { return deployID + "/" + stepID }

// DesiredKey is the Desired key of a role of a service on a host: a
// service's keys share the prefix DesiredPrefix(service, destination).
func DesiredKey(service, destination, role, host string) string {
	return DesiredPrefix(service, destination) + role + "/" + host
}

// DesiredPrefix is the prefix of a service's Desired keys.
func DesiredPrefix(service, destination string) string {
	return locks.Key(service, destination) + "/"
}

// LockKey is the Locks key of a service's deploy lock.
func LockKey(service, destination string) string { return locks.Key(service, destination) }
