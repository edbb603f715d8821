package controller

import (
	"context"
	"sync"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// commandRetention is how long finished commands are kept.
const commandRetention = time.Hour

// pendingRetention is how long an undelivered or unanswered command waits.
const pendingRetention = 24 * time.Hour

// leadershipLoop runs the leader-only work while this node leads: raftstore
// reports leadership only after its Barrier, so the state includes every
// earlier entry. On loss the work is cancelled and awaited.
func (c *Controller) leadershipLoop(ctx context.Context) {
	ch := c.store.LeaderCh()
	var (
		cancel context.CancelFunc
		wg     sync.WaitGroup
	)
	stop := func() {
		if cancel != nil {
			cancel()
			wg.Wait()
			cancel = nil
		}
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case leader, ok := <-ch:
			if !ok {
				return
			}
			stop()
			if leader {
				c.log.Info("leading the cluster")
				lctx, lcancel := context.WithCancel(ctx)
				cancel = lcancel
				wg.Go(func() { c.reconcileMembership(lctx) })
				wg.Go(func() { c.collectGarbage(lctx) })
				wg.Go(func() { c.runDeploys(lctx) })
				wg.Go(func() { c.retainAudit(lctx) })
				wg.Go(func() { c.sealPlaintextCAKey(lctx) })
			}
		}
	}
}

// poke wakes the membership reconciler.
func (c *Controller) poke() {
	select {
	case c.pokeCh <- struct{}{}:
	default:
	}
}

// reconcileMembership makes the Raft configuration match the nodes table:
// voters are nodes marked voter; servers without a node record are removed.
func (c *Controller) reconcileMembership(ctx context.Context) {
	ch, stopWatch := c.store.Watch()
	defer stopWatch()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		c.reconcileOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-c.pokeCh:
		case <-t.C:
		}
	}
}

// collectGarbage deletes, every minute, what garbage returns.
func (c *Controller) collectGarbage(ctx context.Context) {
	t := c.cfg.Clock.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		muts := garbage(c.store.View(), c.cfg.Clock.Now())
		for len(muts) > 0 {
			n := min(len(muts), 1000)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := c.apply(wctx, &raftcmdv1.Command{Mutations: muts[:n]})
			cancel()
			if err != nil {
				c.log.Warn("garbage collection failed", "err", err)
				break
			}
			muts = muts[n:]
		}
	}
}

// garbage returns the deletes of what v holds past its time at now:
// finished commands after commandRetention (they may carry secrets),
// commands no agent answered after pendingRetention, tokens an hour after
// they expire, and presence records of removed controllers.
func garbage(v *raftstore.Snapshot, now time.Time) []*raftcmdv1.Mutation {
	var muts []*raftcmdv1.Mutation
	for _, r := range schema.Commands.List(v, "") {
		rec := r.Value
		done := rec.GetState() == controllerv1.CommandState_COMMAND_STATE_DONE
		switch {
		case done && now.Sub(time.UnixMilli(rec.GetDoneUnixMillis())) > commandRetention,
			// A command no agent answered in a day is not run late.
			!done && now.Sub(time.UnixMilli(rec.GetCreatedUnixMillis())) > pendingRetention:
			muts = append(muts, schema.Commands.Delete(r.Key))
		}
	}
	for _, r := range schema.Tokens.List(v, "") {
		// Spent tokens stay until they expire, so a reuse is told
		// "used up" rather than "unknown".
		if now.Unix() > r.Value.GetExpiresUnix()+3600 {
			muts = append(muts, schema.Tokens.Delete(r.Key))
		}
	}
	for _, r := range schema.Presence.Raw(v, "") {
		if ok := schema.Nodes.Has(v, r.Key); !ok {
			muts = append(muts, schema.Presence.Delete(r.Key))
		}
	}
	return muts
}
