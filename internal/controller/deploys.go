package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/dispatcher"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/scheduler"
	"github.com/kctl-dev/kctl/internal/schema"
)

// deployStore is the deploy service's view of the store: writes go through
// the leader, linearizable reads through linearize.
func (c *Controller) deployStore() deploy.Store {
	return deploy.RaftStore{
		S:       c.store,
		WriteFn: c.apply,
		LeaderIndex: func(ctx context.Context) (uint64, error) {
			if err := c.linearize(ctx); err != nil {
				return 0, err
			}
			return c.store.AppliedIndex(), nil
		},
	}
}

// deployService serves kctl's deploy RPCs on this controller.
func (c *Controller) deployService() *deploy.Service {
	return &deploy.Service{
		Store:  c.deployStore(),
		Agents: deployAgents{c: c, pc: &presenceCache{}},
		Caller: func(ctx context.Context) (string, error) {
			id, err := pki.RemoteIdentity(ctx)
			if err != nil {
				return "", err
			}
			return id.Name, nil
		},
	}
}

// runDeploys drives deploys while this controller leads.
func (c *Controller) runDeploys(ctx context.Context) {
	r := &deploy.Runner{Store: deploy.RaftStore{S: c.store, WriteFn: func(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
		return c.store.Apply(ctx, cmd)
	}}, Agents: deployAgents{c: c, pc: &presenceCache{}}, Logger: c.log.With("component", "deploy"), Clock: c.cfg.Clock}
	r.Run(ctx)
}

// deployAgents gives the deploy runner the controller's command queue and
// agent presence.
type deployAgents struct {
	c  *Controller
	pc *presenceCache // nil: merge presence on every call
}

// presenceCache keeps the merged presence while no controller rewrote its
// presence record, for up to presenceCacheTTL (freshness depends on the
// clock): every running step checks its agent on each tick and a submit
// checks every host, and each merge decodes every controller's record.
type presenceCache struct {
	mu       sync.Mutex
	versions []uint64
	at       time.Time
	m        map[string]dispatcher.Presence
}

const presenceCacheTTL = 100 * time.Millisecond

func (a deployAgents) presence(v *raftstore.Snapshot) map[string]dispatcher.Presence {
	if a.pc == nil {
		return a.c.disp.Presence(v)
	}
	recs := schema.Presence.Raw(v, "")
	versions := make([]uint64, len(recs))
	for i, r := range recs {
		versions[i] = r.ModifyIndex
	}
	a.pc.mu.Lock()
	defer a.pc.mu.Unlock()
	if a.pc.m == nil || !slices.Equal(versions, a.pc.versions) || time.Since(a.pc.at) >= presenceCacheTTL {
		a.pc.m, a.pc.versions, a.pc.at = a.c.disp.Presence(v), versions, time.Now()
	}
	return a.pc.m
}

var _ deploy.Agents = deployAgents{}

// AgentState reports whether the agent is enrolled and connected.
func (a deployAgents) AgentState(name string) scheduler.AgentState {
	v := a.c.store.View()
	if ok := schema.Agents.Has(v, name); !ok {
		return scheduler.AgentUnknown
	}
	if a.presence(v)[name].Connected {
		return scheduler.AgentConnected
	}
	return scheduler.AgentDisconnected
}

// commandIDFor maps a deploy step's key to a stable command id of the form
// the command queue uses (`<16 hex>-<8 hex>.<agent>`), so sending it again
// after a failover is a no-op.
func commandIDFor(agent, key string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	return fmt.Sprintf("%s-%s.%s", h[:16], h[16:24], agent)
}

// Send queues op for agent under a stable id.
func (a deployAgents) Send(ctx context.Context, agent, key string, op *agentv1.Operation) error {
	_, err := a.c.sendCommand(ctx, agent, commandIDFor(agent, key), op)
	return err
}

// Result reports the command's result once recorded.
func (a deployAgents) Result(agent, key string) (*agentv1.Result, bool) {
	rec, err := a.c.Command(commandIDFor(agent, key))
	if err != nil || rec.GetState() != controllerv1.CommandState_COMMAND_STATE_DONE {
		return nil, false
	}
	return rec.GetResult(), true
}

// Forget deletes the commands, pending or done, in one write.
func (a deployAgents) Forget(ctx context.Context, cmds []deploy.AgentCommand) error {
	var muts []*raftcmdv1.Mutation
	for _, cmd := range cmds {
		key, err := commandKey(commandIDFor(cmd.Agent, cmd.ID))
		if err != nil {
			return err
		}
		muts = append(muts, schema.Commands.Delete(key))
	}
	if len(muts) == 0 {
		return nil
	}
	_, err := a.c.store.Apply(ctx, &raftcmdv1.Command{Mutations: muts})
	return err
}
