package kctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/hooks"
	"github.com/kctl-dev/kctl/internal/kctl/lockwait"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

// runDeploy is Kamal's deploy flow with the locked part run by the
// controller: hooks and the build run here, the rest on the controllers.
func (g *globals) runDeploy(cmd *cobra.Command, f *deployFlags, o requestOptions) error {
	ctx := cmd.Context()
	start := time.Now()
	p, err := loadProject(ctx, cmd, f.project, true)
	if err != nil {
		return describeErr(err)
	}
	o.Selection = p.selection()
	hosts := p.allHosts()
	if err := p.runHook(ctx, hooks.PreConnect, o.Command, hosts, nil); err != nil {
		return err
	}
	if !f.skipPush {
		if err := buildAndPush(ctx, cmd, p, o.Command, f.noCache); err != nil {
			return err
		}
	}
	req, err := buildRequest(p.cfg, p.dir, o)
	if err != nil {
		return describeErr(err)
	}
	if err := p.runHook(ctx, hooks.PreDeploy, o.Command, hosts, nil); err != nil {
		return err
	}
	rec, err := g.submit(cmd, f, req)
	if err != nil {
		return err
	}
	if f.detach {
		fmt.Fprintln(cmd.OutOrStdout(), rec.GetId())
		return nil
	}
	final, err := g.watch(cmd, rec.GetId(), p, o.Command)
	if err != nil {
		return err
	}
	if final.GetState() != deployv1.State_STATE_SUCCEEDED {
		return fmt.Errorf("deploy %s %s: %s", final.GetId(), progress.StateName(final.GetState()), firstLine(final.GetError()))
	}
	runtime := strconv.Itoa(int(time.Since(start).Seconds()))
	return p.runHook(ctx, hooks.PostDeploy, o.Command, hosts, map[string]string{"KAMAL_RUNTIME": runtime})
}

// submit records the deploy, waiting for the lock with --lock-wait as Kamal
// does (only behind automatic locks).
func (g *globals) submit(cmd *cobra.Command, f *deployFlags, req *deployv1.Request) (*deployv1.Record, error) {
	if err := g.sealSecrets(cmd.Context(), req); err != nil {
		return nil, err
	}
	var rec *deployv1.Record
	err := withLockWait(cmd, lockWaitFlags{f.lockWait, f.lockWaitTimeout, f.lockWaitInterval}, func(ctx context.Context) error {
		return g.deployClient(ctx, func(ctx context.Context, c deployv1.DeployServiceClient) error {
			resp, err := c.Submit(ctx, &deployv1.SubmitRequest{Request: req})
			rec = resp.GetDeploy()
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// withLockWait runs try, which takes the deploy lock, once, or with
// --lock-wait until the lock is free (only behind automatic locks).
func withLockWait(cmd *cobra.Command, lw lockWaitFlags, try func(context.Context) error) error {
	if !lw.wait {
		return try(cmd.Context())
	}
	return lockwait.Do(cmd.Context(), lockwait.Options{
		Timeout: lw.timeout, Interval: lw.interval,
		Waiting: func(_ *deployv1.LockRecord, err error) {
			fmt.Fprintf(cmd.ErrOrStderr(), "Waiting for the deploy lock: %s\n", err)
		},
	}, try)
}

// watch follows a deploy to its end, re-attaching through another
// controller when the one it watches goes away. With a project it runs the
// pre-app-boot and post-app-boot hooks as boot groups start and end.
func (g *globals) watch(cmd *cobra.Command, id string, p *project, command string) (*deployv1.Record, error) {
	return g.watchHooks(cmd, id, p, command, hooks.PreAppBoot, hooks.PostAppBoot)
}

// watchHooks is watch with the hooks run around each host group (phases
// naming group hosts): pre when its first step starts, post when all its
// steps succeeded.
func (g *globals) watchHooks(cmd *cobra.Command, id string, p *project, command, pre, post string) (*deployv1.Record, error) {
	w := &watcher{prog: &progress.Printer{W: g.out(cmd)}, p: p, command: command, pre: pre, post: post,
		groupsStarted: map[int]bool{}, groupsDone: map[int]bool{}}
	lostSince := time.Time{}
	for attempt := 0; ; attempt++ {
		err := g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
			return w.follow(ctx, c, id)
		})
		if w.last != nil && progress.Ended(w.last.GetDeploy().GetState()) {
			w.prog.Summary(w.last.GetDeploy(), w.last.GetSteps())
			return w.last.GetDeploy(), nil
		}
		if cmd.Context().Err() != nil {
			return nil, cmd.Context().Err()
		}
		// A stream that ended early or a controller that went away: the
		// deploy goes on without us; re-attach through any controller for
		// as long as --timeout allows, then say how to come back.
		lost := err == nil || errors.Is(err, ctlclient.ErrUnreachable) ||
			status.Code(err) == codes.Unavailable || status.Code(err) == codes.Canceled
		if !lost {
			return nil, err
		}
		if err == nil {
			lostSince = time.Time{}
		} else if lostSince.IsZero() {
			lostSince = time.Now()
		} else if time.Since(lostSince) > g.deadline {
			return nil, fmt.Errorf("lost every controller for %s (%v); the deploy goes on without kctl: re-attach with `kctl deploys watch %s`", g.deadline, err, id)
		}
		if attempt > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "Lost the controller; re-attaching to deploy %s\n", id)
		}
		select {
		case <-cmd.Context().Done():
			return nil, cmd.Context().Err()
		case <-time.After(time.Duration(min(attempt+1, 5)) * 200 * time.Millisecond):
		}
	}
}

// watcher is one watch's state across re-attachments.
type watcher struct {
	prog          *progress.Printer
	p             *project // nil: no hooks to run
	command       string
	pre, post     string // the hooks around each host group
	last          *deployv1.WatchResponse
	groupsStarted map[int]bool
	groupsDone    map[int]bool
}

// follow prints the deploy's progress from one controller's stream until it
// ends, running the boot group hooks; a failed hook cancels the deploy.
func (w *watcher) follow(ctx context.Context, c deployv1.DeployServiceClient, id string) error {
	stream, err := c.Watch(ctx, &deployv1.WatchRequest{Id: id})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		w.last = resp
		w.prog.Update(resp.GetDeploy(), resp.GetSteps())
		if w.p != nil {
			if err := groupHooks(ctx, w, resp); err != nil {
				c.Cancel(ctx, &deployv1.CancelRequest{Id: id})
				return err
			}
		}
	}
}

// groupHooks runs the pre hook (pre-app-boot) when a host group's first
// step starts and the post hook (post-app-boot) when all its steps
// succeeded, with KAMAL_HOSTS = the group.
func groupHooks(ctx context.Context, w *watcher, resp *deployv1.WatchResponse) error {
	p, command, started, done := w.p, w.command, w.groupsStarted, w.groupsDone
	states := map[string]deployv1.State{}
	for _, s := range resp.GetSteps() {
		states[s.GetStepId()] = s.GetState()
	}
	for i, ph := range resp.GetDeploy().GetPlan().GetPhases() {
		if len(ph.GetGroupHosts()) == 0 {
			continue
		}
		any, all := false, true
		for _, s := range ph.GetSteps() {
			st, ok := states[s.GetId()]
			any = any || ok
			all = all && st == deployv1.State_STATE_SUCCEEDED
		}
		group := map[string]string{"KAMAL_HOSTS": strings.Join(ph.GetGroupHosts(), ",")}
		if any && !started[i] {
			started[i] = true
			if err := p.runHook(ctx, w.pre, command, ph.GetGroupHosts(), group); err != nil {
				return err
			}
		}
		if all && !done[i] {
			done[i] = true
			if err := p.runHook(ctx, w.post, command, ph.GetGroupHosts(), group); err != nil {
				return err
			}
		}
	}
	return nil
}
