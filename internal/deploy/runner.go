package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/scheduler"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// Runner drives deploys. It runs only on the Raft leader: Run starts when
// this controller gains leadership and returns when it loses it (ctx is
// cancelled); the next leader's Runner resumes from the recorded steps.
type Runner struct {
	Store  Store
	Agents Agents
	Logger *slog.Logger
	// Clock drives the timers that guard a deploy: the loop that releases
	// stale locks, step deadlines, the disconnect grace and phase waits
	// (clock.Real when nil).
	Clock clock.Clock
	// DisconnectGrace is how long a step waits for a disconnected agent
	// before failing the host, when the deploy names no deploy_timeout.
	DisconnectGrace time.Duration

	mu      sync.Mutex // guards running
	running map[string]bool

	// seen caches, per deploy id, whether the record at a version showed
	// the deploy finished, so Run does not decode deploy records (large:
	// they hold the plan) again on every store change. Only Run's
	// goroutine touches it.
	seen map[string]seenRecord

	cancelMu sync.Mutex // guards cancels
	cancels  map[string]cancelState
}

// cancelState is whether a deploy record at a version asks to cancel.
type cancelState struct {
	version   uint64
	requested bool
}

type seenRecord struct {
	version  uint64
	finished bool
}

// isFinished reports whether the deploy record kv shows a finished deploy,
// decoding it only when its version changed.
func (r *Runner) isFinished(kv raftstore.Record) bool {
	if c, hit := r.seen[kv.Key]; hit && c.version == kv.ModifyIndex {
		return c.finished
	}
	fin := Ended(schema.Deploys.Decode(kv).GetState())
	r.seen[kv.Key] = seenRecord{version: kv.ModifyIndex, finished: fin}
	return fin
}

func (r *Runner) now() time.Time { return clock.Or(r.Clock).Now() }

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Run drives every unfinished deploy until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	changes, stop := r.Store.Watch()
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := clock.Or(r.Clock).NewTicker(time.Second)
	defer tick.Stop()
	r.seen = map[string]seenRecord{}
	for {
		for _, kv := range schema.Deploys.Raw(r.Store, "") {
			if r.isFinished(kv) {
				continue
			}
			r.mu.Lock()
			if r.running == nil {
				r.running = map[string]bool{}
			}
			start := !r.running[kv.Key]
			r.running[kv.Key] = true
			r.mu.Unlock()
			if start {
				id := kv.Key
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() {
						r.mu.Lock()
						delete(r.running, id)
						r.mu.Unlock()
					}()
					r.drive(ctx, id)
				}()
			}
		}
		r.releaseStaleLocks(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-tick.C():
		}
	}
}

func Ended(s deployv1.State) bool {
	switch s {
	case deployv1.State_STATE_SUCCEEDED, deployv1.State_STATE_FAILED, deployv1.State_STATE_CANCELLED:
		return true
	}
	return false
}

// releaseStaleLocks deletes locks held by deploys that have ended, so no
// lock is ever stuck (a deploy that ended releases its own lock; this also
// covers a leader that died between the two).
func (r *Runner) releaseStaleLocks(ctx context.Context) {
	for _, kv := range schema.Locks.List(r.Store, "") {
		if kv.Value.GetDeployId() == "" {
			continue
		}
		if dkv, ok := r.Store.Get(schema.Deploys.Name(), kv.Value.GetDeployId()); ok && !r.isFinished(dkv) {
			continue
		}
		r.Store.Write(ctx, &raftcmdv1.Command{
			Preconditions: []*raftcmdv1.Precondition{schema.Locks.IfVersion(kv.Key, kv.Version)},
			Mutations:     []*raftcmdv1.Mutation{schema.Locks.Delete(kv.Key)},
		})
	}
}

// drive runs one deploy to its end, or until leadership is lost.
func (r *Runner) drive(ctx context.Context, id string) {
	log := r.logger().With("deploy", id)
	rec, _, ok := schema.Deploys.Get(r.Store, id)
	if !ok || Ended(rec.GetState()) {
		// Ended meanwhile: Run listed it before its drive finished it.
		return
	}
	// The recorded plan holds every step's operation, its secrets replaced
	// by references into this record (resolved as each step is sent).
	req, _, ok := schema.Secrets.Get(r.Store, id)
	if !ok {
		r.finish(ctx, rec, deployv1.State_STATE_FAILED, "the deploy's resolved request is gone; submit it again")
		return
	}
	if rec.GetState() == deployv1.State_STATE_PENDING {
		rec.State = deployv1.State_STATE_RUNNING
		if !r.saveRecord(ctx, rec) {
			return
		}
		r.audit(ctx, rec, "", "", "deploy started", "running", "")
	}
	log.Info("driving deploy", "phase", rec.GetPhase(), "phases", len(rec.GetPlan().GetPhases()))

	phases := rec.GetPlan().GetPhases()
	for i := int(rec.GetPhase()); i < len(phases); i++ {
		if ctx.Err() != nil {
			return
		}
		if r.cancelRequested(id) {
			r.finish(ctx, rec, deployv1.State_STATE_CANCELLED, "cancelled by "+r.cancelledBy(id))
			return
		}
		ph := phases[i]
		failures := r.runPhase(ctx, rec, req, ph)
		if ctx.Err() != nil {
			return // leadership lost: the next leader resumes this phase
		}
		if len(failures) > 0 && r.cancelRequested(id) {
			r.finish(ctx, rec, deployv1.State_STATE_CANCELLED, "cancelled by "+r.cancelledBy(id))
			return
		}
		if len(failures) > 0 {
			msg := failures[0]
			if len(failures) > 1 {
				msg = fmt.Sprintf("Exceptions on %d hosts:\n  %s", len(failures), strings.Join(failures, "\n  "))
			}
			r.finish(ctx, rec, deployv1.State_STATE_FAILED, msg)
			return
		}
		if w := ph.GetWaitSeconds(); w > 0 {
			select {
			case <-ctx.Done():
				return
			case <-clock.Or(r.Clock).After(time.Duration(w) * time.Second):
			}
		}
		if err := r.reload(id, rec); err != nil {
			return
		}
		rec.Phase = uint32(i + 1)
		if !r.saveRecord(ctx, rec) {
			return
		}
	}
	r.finish(ctx, rec, deployv1.State_STATE_SUCCEEDED, "")
}

// runPhase runs the steps of one phase concurrently, honouring `after`
// (every named step must succeed) and `after_any` (Kamal's barrier: one must
// succeed). It returns one line per failed host.
func (r *Runner) runPhase(ctx context.Context, rec *deployv1.Record, req *deployv1.Request, ph *deployv1.Phase) []string {
	type outcome struct {
		state deployv1.State
		err   string
	}
	done := map[string]chan struct{}{}
	results := map[string]*outcome{}
	for _, s := range ph.GetSteps() {
		done[s.GetId()] = make(chan struct{})
		results[s.GetId()] = &outcome{}
	}
	var wg sync.WaitGroup
	for _, s := range ph.GetSteps() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := results[s.GetId()]
			defer close(done[s.GetId()])
			for _, dep := range s.GetAfter() {
				if ch, ok := done[dep]; ok {
					<-ch
					if results[dep].state != deployv1.State_STATE_SUCCEEDED {
						out.state, out.err = deployv1.State_STATE_SKIPPED, "skipped: "+dep+" did not succeed"
						r.saveStep(ctx, rec, s, out.state, "", out.err, "")
						return
					}
				}
			}
			if len(s.GetAfterAny()) > 0 && !waitAny(s.GetAfterAny(), done, func(id string) bool {
				return results[id].state == deployv1.State_STATE_SUCCEEDED
			}) {
				out.state, out.err = deployv1.State_STATE_FAILED, "Halted at barrier: no "+req.GetPrimaryRole()+" container became healthy"
				r.saveStep(ctx, rec, s, out.state, "", out.err, "")
				return
			}
			out.state, out.err = r.runStep(ctx, rec, req, s)
		}()
	}
	wg.Wait()
	var failures []string
	for _, s := range ph.GetSteps() {
		if o := results[s.GetId()]; o.state == deployv1.State_STATE_FAILED {
			failures = append(failures, fmt.Sprintf("%s: %s", s.GetHost(), o.err))
		}
	}
	sort.Strings(failures)
	return failures
}

// waitAny waits until one of ids finished with ok(id), or all finished.
func waitAny(ids []string, done map[string]chan struct{}, ok func(string) bool) bool {
	pending := map[string]bool{}
	for _, id := range ids {
		if _, known := done[id]; known {
			pending[id] = true
		}
	}
	if len(pending) == 0 {
		return true
	}
	for len(pending) > 0 {
		cases := make([]chan struct{}, 0, len(pending))
		names := make([]string, 0, len(pending))
		for id := range pending {
			cases = append(cases, done[id])
			names = append(names, id)
		}
		i := selectAny(cases)
		delete(pending, names[i])
		if ok(names[i]) {
			return true
		}
	}
	return false
}

// selectAny returns the index of a closed channel, waiting for one.
func selectAny(chs []chan struct{}) int {
	fired := make(chan int, len(chs))
	stop := make(chan struct{})
	defer close(stop)
	for i, ch := range chs {
		go func() {
			select {
			case <-ch:
				fired <- i
			case <-stop:
			}
		}()
	}
	return <-fired
}

// runStep carries one step out on its host and records the outcome.
func (r *Runner) runStep(ctx context.Context, rec *deployv1.Record, req *deployv1.Request, s *deployv1.Step) (deployv1.State, string) {
	sr, _, ok := schema.Steps.Get(r.Store, schema.StepKey(rec.GetId(), s.GetId()))
	if ok && Ended(sr.GetState()) {
		return sr.GetState(), sr.GetError()
	}
	if s.GetOp() == nil {
		return deployv1.State_STATE_FAILED, "internal error: no operation for step " + s.GetId()
	}
	op, err := resolveOperation(s.GetOp(), req)
	if err != nil {
		msg := "internal error: " + err.Error()
		r.saveStep(ctx, rec, s, deployv1.State_STATE_FAILED, "", msg, "")
		return deployv1.State_STATE_FAILED, msg
	}
	if sealbox.HasPlaceholders(op) {
		// Only the host's agent can open its bundle.
		op.SealedSecrets = req.GetSealedSecrets()[s.GetHost()]
	}
	cmdID := commandID(rec.GetId(), s.GetId())
	// Record the step as running while sending it: the two writes share a
	// Raft round trip. Either order is safe to resume from: a new leader
	// sends the command again under the same id, which is a no-op.
	var saved sync.WaitGroup
	if sr.GetState() != deployv1.State_STATE_RUNNING {
		saved.Go(func() { r.saveStep(ctx, rec, s, deployv1.State_STATE_RUNNING, cmdID, "", "") })
	}
	err = r.Agents.Send(ctx, s.GetHost(), cmdID, op)
	saved.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return deployv1.State_STATE_RUNNING, ""
		}
		msg := "could not send to agent: " + err.Error()
		r.saveStep(ctx, rec, s, deployv1.State_STATE_FAILED, cmdID, msg, "")
		return deployv1.State_STATE_FAILED, msg
	}
	changes, stop := r.Store.Watch()
	defer stop()
	tick := clock.Or(r.Clock).NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	grace := r.disconnectGrace(req)
	var downSince time.Time
	started := time.UnixMilli(sr.GetStartedUnixMillis())
	if sr.GetStartedUnixMillis() == 0 {
		started = r.now()
	}
	deadline := started.Add(stepTimeout(op))
	checkAgent := true
	for {
		if res, ok := r.Agents.Result(s.GetHost(), cmdID); ok {
			state, msg := deployv1.State_STATE_SUCCEEDED, ""
			if !res.GetOk() {
				state, msg = deployv1.State_STATE_FAILED, res.GetError()
			}
			r.saveStep(ctx, rec, s, state, cmdID, msg, res.GetDetail())
			return state, msg
		}
		if !checkAgent {
			// Presence is coarse (seconds); check it on the tick, not on
			// every store change.
		} else if r.Agents.AgentState(s.GetHost()) != scheduler.AgentConnected {
			if downSince.IsZero() {
				downSince = r.now()
			} else if r.now().Sub(downSince) > grace {
				msg := fmt.Sprintf("agent %s disconnected for more than %s", s.GetHost(), grace)
				r.saveStep(ctx, rec, s, deployv1.State_STATE_FAILED, cmdID, msg, "")
				return deployv1.State_STATE_FAILED, msg
			}
		} else {
			downSince = time.Time{}
		}
		if checkAgent && r.cancelRequested(rec.GetId()) {
			msg := "cancelled by " + r.cancelledBy(rec.GetId())
			r.saveStep(ctx, rec, s, deployv1.State_STATE_FAILED, cmdID, msg, "")
			return deployv1.State_STATE_FAILED, msg
		}
		if checkAgent && r.now().After(deadline) {
			msg := fmt.Sprintf("agent %s did not finish %q within %s", s.GetHost(), s.GetAction(), stepTimeout(op))
			r.saveStep(ctx, rec, s, deployv1.State_STATE_FAILED, cmdID, msg, "")
			return deployv1.State_STATE_FAILED, msg
		}
		select {
		case <-ctx.Done():
			return deployv1.State_STATE_RUNNING, ""
		case <-changes:
			checkAgent = false
		case <-tick.C():
			checkAgent = true
		}
	}
}

// stepTimeout bounds one step, so a hung engine cannot hold a deploy and
// its lock forever: steps that may pull an image get half an hour, the rest
// ten minutes (kamal-proxy's own deploy timeout is far shorter).
func stepTimeout(op *agentv1.Operation) time.Duration {
	switch op.GetOp().(type) {
	case *agentv1.Operation_PullImage, *agentv1.Operation_BootProxy, *agentv1.Operation_BootAccessory:
		return 30 * time.Minute
	}
	return 10 * time.Minute
}

func (r *Runner) disconnectGrace(req *deployv1.Request) time.Duration {
	var longest uint32
	for _, role := range req.GetRoles() {
		longest = max(longest, role.GetReadiness().GetDeployTimeout(), role.GetProxy().GetDeployTimeout())
	}
	if longest > 0 {
		return time.Duration(longest) * time.Second
	}
	if r.DisconnectGrace > 0 {
		return r.DisconnectGrace
	}
	return 30 * time.Second
}

func (r *Runner) saveStep(ctx context.Context, rec *deployv1.Record, s *deployv1.Step, state deployv1.State, cmdID, errMsg, detail string) {
	key := schema.StepKey(rec.GetId(), s.GetId())
	sr := &deployv1.StepRecord{DeployId: rec.GetId(), StepId: s.GetId(), State: state, CommandId: cmdID, Error: errMsg, Detail: detail}
	if prev, _, ok := schema.Steps.Get(r.Store, key); ok {
		sr.StartedUnixMillis = prev.GetStartedUnixMillis()
	}
	now := r.now().UnixMilli()
	if sr.StartedUnixMillis == 0 {
		sr.StartedUnixMillis = now
	}
	muts := []*raftcmdv1.Mutation{}
	if Ended(state) || state == deployv1.State_STATE_SKIPPED {
		sr.FinishedUnixMillis = now
		result := strings.ToLower(strings.TrimPrefix(state.String(), "STATE_"))
		muts = append(muts, schema.Audit.Append(r.entry(rec, s.GetRole(), s.GetHost(), s.GetAction(), result, errMsg)))
	}
	muts = append(muts, schema.Steps.Put(key, sr))
	if _, err := r.Store.Write(ctx, &raftcmdv1.Command{Mutations: muts}); err != nil {
		r.logger().Warn("record step", "deploy", rec.GetId(), "step", s.GetId(), "err", err)
	}
}

func (r *Runner) entry(rec *deployv1.Record, role, host, action, result, detail string) *deployv1.AuditEntry {
	req := rec.GetRequest()
	return &deployv1.AuditEntry{
		UnixMillis: r.now().UnixMilli(), Operator: rec.GetOperator(), Service: req.GetService(),
		Destination: req.GetDestination(), Role: role, Host: host, Version: req.GetVersion(),
		Action: action, Result: result, DeployId: rec.GetId(), Detail: detail,
	}
}

func (r *Runner) audit(ctx context.Context, rec *deployv1.Record, role, host, action, result, detail string) {
	r.Store.Write(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Audit.Append(r.entry(rec, role, host, action, result, detail))}})
}

func (r *Runner) reload(id string, rec *deployv1.Record) error {
	fresh, _, ok := schema.Deploys.Get(r.Store, id)
	if !ok {
		return fmt.Errorf("deploy %s: %w", id, ErrNotFound)
	}
	rec.CancelRequested, rec.CancelledBy = fresh.GetCancelRequested(), fresh.GetCancelledBy()
	return nil
}

func (r *Runner) cancelRequested(id string) bool {
	kv, ok := r.Store.Get(schema.Deploys.Name(), id)
	if !ok {
		return false
	}
	// Every running step asks on every tick: decode the record (large: it
	// holds the plan) only when its version changed.
	r.cancelMu.Lock()
	c, hit := r.cancels[id]
	r.cancelMu.Unlock()
	if hit && c.version == kv.ModifyIndex {
		return c.requested
	}
	rec := schema.Deploys.Decode(kv)
	r.cancelMu.Lock()
	if r.cancels == nil {
		r.cancels = map[string]cancelState{}
	}
	r.cancels[id] = cancelState{version: kv.ModifyIndex, requested: rec.GetCancelRequested()}
	r.cancelMu.Unlock()
	return rec.GetCancelRequested()
}

func (r *Runner) cancelledBy(id string) string {
	rec, _, _ := schema.Deploys.Get(r.Store, id)
	return rec.GetCancelledBy()
}

// saveRecord writes rec, keeping cancel flags set by others meanwhile.
func (r *Runner) saveRecord(ctx context.Context, rec *deployv1.Record) bool {
	for ctx.Err() == nil {
		cur, v, ok := schema.Deploys.Get(r.Store, rec.GetId())
		if !ok {
			return false
		}
		if cur.GetCancelRequested() {
			rec.CancelRequested, rec.CancelledBy = true, cur.GetCancelledBy()
		}
		res, err := r.Store.Write(ctx, &raftcmdv1.Command{
			Preconditions: []*raftcmdv1.Precondition{schema.Deploys.IfVersion(rec.GetId(), v)},
			Mutations:     []*raftcmdv1.Mutation{schema.Deploys.Put(rec.GetId(), rec)},
		})
		if err != nil {
			r.logger().Warn("record deploy", "deploy", rec.GetId(), "err", err)
			return false
		}
		if res.GetApplied() {
			return true
		}
	}
	return false
}

// forgetCommands deletes the agent commands of an ended deploy.
func (r *Runner) forgetCommands(ctx context.Context, rec *deployv1.Record) {
	var cmds []AgentCommand
	for _, s := range scheduler.Steps(rec.GetPlan()) {
		cmds = append(cmds, AgentCommand{Agent: s.GetHost(), ID: commandID(rec.GetId(), s.GetId())})
	}
	if err := r.Agents.Forget(ctx, cmds); err != nil {
		r.logger().Warn("forget the deploy's agent commands", "deploy", rec.GetId(), "err", err)
	}
}

// commandID is the id a deploy step's command is sent under.
func commandID(deployID, stepID string) string { return "deploy." + deployID + "." + stepID }

// finish ends the deploy: final state, secrets deleted, lock released (if
// this deploy holds it) and an audit entry, in one write.
func (r *Runner) finish(ctx context.Context, rec *deployv1.Record, state deployv1.State, msg string) {
	req := rec.GetRequest()
	lockKey := schema.LockKey(req.GetService(), req.GetDestination())
	for ctx.Err() == nil {
		cur, v, ok := schema.Deploys.Get(r.Store, rec.GetId())
		if !ok {
			return
		}
		rec.State, rec.Error, rec.FinishedUnixMillis = state, msg, r.now().UnixMilli()
		rec.CancelRequested, rec.CancelledBy = cur.GetCancelRequested(), cur.GetCancelledBy()
		pre := []*raftcmdv1.Precondition{schema.Deploys.IfVersion(rec.GetId(), v)}
		result := strings.ToLower(strings.TrimPrefix(state.String(), "STATE_"))
		muts := []*raftcmdv1.Mutation{
			schema.Deploys.Put(rec.GetId(), rec),
			schema.Secrets.Delete(rec.GetId()),
			schema.Audit.Append(r.entry(rec, "", "", finishedAction(req), result, msg)),
		}
		if lock, lv, held := schema.Locks.Get(r.Store, lockKey); held && lock.GetDeployId() == rec.GetId() {
			pre = append(pre, schema.Locks.IfVersion(lockKey, lv))
			muts = append(muts, schema.Locks.Delete(lockKey), schema.Audit.Append(r.entry(rec, "", "", "released the deploy lock", "ok", "")))
		}
		res, err := r.Store.Write(ctx, &raftcmdv1.Command{Preconditions: pre, Mutations: muts})
		if err != nil {
			r.logger().Warn("finish deploy", "deploy", rec.GetId(), "err", err)
			return
		}
		if res.GetApplied() {
			r.logger().Info("deploy finished", "deploy", rec.GetId(), "state", result, "error", msg)
			r.forgetCommands(ctx, rec)
			return
		}
	}
}
