package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/schema"
)

// A command id is "<16 hex digits of unix nanos>-<8 hex random>.<agent>":
// ids sort by creation time and name their agent, so WaitResult needs only
// the id. The store key is "<agent>/<id>".
const idPrefixLen = 16 + 1 + 8

// NewCommandID returns a fresh command id for agent.
func NewCommandID(agent string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%016x-%s.%s", time.Now().UnixNano(), hex.EncodeToString(b), agent)
}

func commandKey(id string) (string, error) {
	if len(id) <= idPrefixLen+1 || id[idPrefixLen] != '.' {
		return "", status.Errorf(codes.InvalidArgument, "controller: %q is not a command id", id)
	}
	return schema.CommandKey(id[idPrefixLen+1:], id), nil
}

// SendCommand records op for agent in Raft and returns the command's id.
// Whichever controller holds the agent's session delivers it, at least once;
// the agent runs it once per id. The command survives the death of this
// controller and of the one holding the session. Errors: NotFound (unknown
// agent), Unavailable (no leader in time).
func (c *Controller) SendCommand(ctx context.Context, agent string, op *agentv1.Operation) (string, error) {
	return c.sendCommand(ctx, agent, "", op)
}

func (c *Controller) sendCommand(ctx context.Context, agent, id string, op *agentv1.Operation, pre ...*raftcmdv1.Precondition) (string, error) {
	if id == "" {
		id = NewCommandID(agent)
	}
	key, err := commandKey(id)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(key, agent+"/") {
		return "", status.Errorf(codes.InvalidArgument, "controller: command id %q is not for agent %q", id, agent)
	}
	rec := &controllerv1.CommandRecord{
		Id: id, Agent: agent, Operation: op, State: controllerv1.CommandState_COMMAND_STATE_PENDING,
		CreatedUnixMillis: c.cfg.Clock.Now().UnixMilli(), CreatedBy: caller(ctx),
	}
	// request_id = id: a retried SendCommand with the same id is a no-op.
	res, err := c.apply(ctx, &raftcmdv1.Command{
		RequestId:     "cmd:" + id,
		Preconditions: append([]*raftcmdv1.Precondition{schema.Agents.IfPresent(agent), schema.Commands.IfAbsent(key)}, pre...),
		Mutations:     []*raftcmdv1.Mutation{schema.Commands.Put(key, rec)},
	})
	if err != nil {
		return "", err
	}
	if !res.GetApplied() {
		if ok := schema.Commands.Has(c.store.View(), key); ok {
			return id, nil // already recorded (a retry)
		}
		if len(pre) > 0 && schema.Agents.Has(c.store.View(), agent) {
			return "", errConflict
		}
		return "", status.Errorf(codes.NotFound, "controller: no agent %q (kctl agents)", agent)
	}
	return id, nil
}

// Command returns the command record for id. Errors: NotFound.
func (c *Controller) Command(id string) (*controllerv1.CommandRecord, error) {
	key, err := commandKey(id)
	if err != nil {
		return nil, err
	}
	rec, _, ok := schema.Commands.Get(c.store.View(), key)
	if !ok {
		return nil, fmt.Errorf("%w: command %s", errNotFound, id)
	}
	return rec, nil
}

// WaitResult waits until the command's result is recorded and returns the
// command. Errors: NotFound, ctx's error.
func (c *Controller) WaitResult(ctx context.Context, id string) (*controllerv1.CommandRecord, error) {
	ch, stop := c.store.Watch()
	defer stop()
	for {
		rec, err := c.Command(id)
		if err != nil {
			return nil, err
		}
		if rec.GetState() == controllerv1.CommandState_COMMAND_STATE_DONE {
			return rec, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "controller: command %s: no result yet (%v); it stays queued for the agent", id, ctx.Err())
		}
	}
}

// broadcastChunk bounds the commands written per Raft entry.
const broadcastChunk = 1000

// Broadcast records one command per agent for op, in as few Raft entries as
// possible (a deploy's fan-out), and returns the ids in the agents' order.
// Unknown agents fail the chunk that names them with NotFound.
func (c *Controller) Broadcast(ctx context.Context, agents []string, op *agentv1.Operation) ([]string, error) {
	ids := make([]string, len(agents))
	for start := 0; start < len(agents); start += broadcastChunk {
		end := min(start+broadcastChunk, len(agents))
		// A retried chunk must not reset commands already answered.
		cmd := &raftcmdv1.Command{RequestId: "bcast:" + newID()}
		now := c.cfg.Clock.Now().UnixMilli()
		for i := start; i < end; i++ {
			ids[i] = NewCommandID(agents[i])
			key, _ := commandKey(ids[i])
			cmd.Preconditions = append(cmd.Preconditions, schema.Agents.IfPresent(agents[i]))
			cmd.Mutations = append(cmd.Mutations, schema.Commands.Put(key, &controllerv1.CommandRecord{
				Id: ids[i], Agent: agents[i], Operation: op, State: controllerv1.CommandState_COMMAND_STATE_PENDING,
				CreatedUnixMillis: now, CreatedBy: caller(ctx),
			}))
		}
		res, err := c.apply(ctx, cmd)
		if err != nil {
			return nil, err
		}
		if !res.GetApplied() {
			return nil, status.Errorf(codes.NotFound, "controller: broadcast: %s", res.GetConflict())
		}
	}
	return ids, nil
}

// Sessions reports how many agent sessions this controller holds.
func (c *Controller) Sessions() int {
	return c.disp.Sessions()
}
