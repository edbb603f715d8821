package dispatcher

import (
	"context"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/schema"
)

// pendingResult is one result awaiting its Raft write.
type pendingResult struct {
	s   *session
	res *agentv1.CommandResult
}

// resultWriter batches command results into few Raft writes: one entry per
// batch of up to maxResultBatch results, those that arrived while the
// previous batch was being written.
type resultWriter struct {
	d  *Dispatcher
	ch chan pendingResult
}

const maxResultBatch = 512

func newResultWriter(d *Dispatcher) *resultWriter {
	return &resultWriter{d: d, ch: make(chan pendingResult, 4096)}
}

// submit queues a result of s's agent. A result that cannot be queued
// before the session ends is dropped: the agent answers the redelivery
// from its journal.
func (w *resultWriter) submit(s *session, r *agentv1.CommandResult) {
	select {
	case w.ch <- pendingResult{s, r}:
	case <-s.stream.Context().Done():
	}
}

func (w *resultWriter) run(ctx context.Context) {
	for {
		var batch []pendingResult
		select {
		case <-ctx.Done():
			return
		case p := <-w.ch:
			batch = append(batch, p)
		}
		// Group commit: take what queued while the last write was in
		// flight, without waiting for more. A lone result is written at
		// once; a burst gathers behind the write before it.
	gather:
		for len(batch) < maxResultBatch {
			select {
			case p := <-w.ch:
				batch = append(batch, p)
			default:
				break gather
			}
		}
		w.write(ctx, batch)
	}
}

// command builds the write recording batch: each result goes to its
// session's agent's command, if that is still pending.
func (w *resultWriter) command(batch []pendingResult) *raftcmdv1.Command {
	v := w.d.cluster.View()
	now := time.Now().UnixMilli()
	cmd := &raftcmdv1.Command{}
	seen := map[string]bool{}
	for _, p := range batch {
		// Only the session's own agent's commands: another agent's id
		// has no record under this agent's prefix.
		key := schema.CommandKey(p.s.name, p.res.GetId())
		if seen[key] {
			continue
		}
		rec, _, ok := schema.Commands.Get(v, key)
		if !ok || rec.GetState() == controllerv1.CommandState_COMMAND_STATE_DONE {
			continue
		}
		seen[key] = true
		rec.State = controllerv1.CommandState_COMMAND_STATE_DONE
		rec.Result = p.res.GetResult()
		rec.DoneUnixMillis = now
		rec.Controller = w.d.cfg.Name
		// Present: a command deleted meanwhile (agent removed, GC) stays
		// deleted.
		cmd.Preconditions = append(cmd.Preconditions, schema.Commands.IfPresent(key))
		cmd.Mutations = append(cmd.Mutations, schema.Commands.Put(key, rec))
	}
	return cmd
}

func (w *resultWriter) write(ctx context.Context, batch []pendingResult) {
	cmd := w.command(batch)
	if len(cmd.Mutations) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := w.d.cluster.Write(wctx, cmd)
	if err == nil && !res.GetApplied() {
		// Some command vanished (preconditions are per command): write
		// the rest one by one.
		for i, m := range cmd.Mutations {
			_, err = w.d.cluster.Write(wctx, &raftcmdv1.Command{Preconditions: cmd.Preconditions[i : i+1], Mutations: []*raftcmdv1.Mutation{m}})
		}
	}
	if err != nil {
		w.d.log.Warn("recording command results failed; they will be redelivered", "err", err, "results", len(cmd.Mutations))
		for _, p := range batch {
			p.s.forget(p.res.GetId())
		}
	}
}
