package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/schema"
)

// waitPending waits until agent holds a command.
func waitPending(t testing.TB, h *memHarness, agent string) {
	t.Helper()
	h.advanceUntil(t, 0, agent+" holding a step", func() error {
		h.agents.mu.Lock()
		defer h.agents.mu.Unlock()
		if len(h.agents.pending[agent]) == 0 {
			return errors.New("nothing pending on " + agent)
		}
		return nil
	})
}

func submit(t testing.TB, h *memHarness, operator string, req *deployv1.Request) string {
	t.Helper()
	resp, err := h.service(operator).Submit(context.Background(), &deployv1.SubmitRequest{Request: req})
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	return resp.GetDeploy().GetId()
}

// The leader releases a lock whose deploy has ended or is gone (a leader
// died between a deploy's end and its lock's release), whether it finds it
// when it starts leading or later, and keeps a running deploy's lock and a
// lock taken by hand.
func TestRunner_ReleasesLocksOfEndedDeploys(t *testing.T) {
	agents := newFakeAgents("h1")
	agents.hold["h1"] = true
	h := newMemHarness(t, agents)
	running := submit(t, h, "alice", request("app", map[string][]string{"web": {"h1"}}, "web"))
	putRecords(t, h.store,
		schema.Deploys.Put("d-ended", &deployv1.Record{Id: "d-ended", State: deployv1.State_STATE_FAILED, Request: &deployv1.Request{Service: "old"}}),
		schema.Locks.Put(schema.LockKey("old", ""), &deployv1.LockRecord{Service: "old", DeployId: "d-ended", Holder: "bob"}),
		schema.Locks.Put(schema.LockKey("gone", "staging"), &deployv1.LockRecord{Service: "gone", Destination: "staging", DeployId: "d-missing", Holder: "bob"}),
		schema.Locks.Put(schema.LockKey("manual", ""), &deployv1.LockRecord{Service: "manual", Holder: "carol", Message: "db migration"}),
	)
	h.start()
	released := func(keys ...string) func() error {
		return func() error {
			for _, k := range keys {
				if schema.Locks.Has(h.store, k) {
					return fmt.Errorf("lock %s still held", k)
				}
			}
			return nil
		}
	}
	h.advanceUntil(t, time.Second, "stale locks released", released(schema.LockKey("old", ""), schema.LockKey("gone", "staging")))
	waitPending(t, h, "h1")
	if l, _, ok := schema.Locks.Get(h.store, schema.LockKey("app", "")); !ok || l.GetDeployId() != running {
		t.Errorf("the running deploy's lock = %v, %v; want held by %s", l, ok, running)
	}
	if !schema.Locks.Has(h.store, schema.LockKey("manual", "")) {
		t.Error("a lock taken by hand was released")
	}

	// A stale lock that appears while the leader runs goes too.
	putRecords(t, h.store, schema.Locks.Put(schema.LockKey("late", ""), &deployv1.LockRecord{Service: "late", DeployId: "d-ended"}))
	h.advanceUntil(t, time.Second, "the late stale lock released", released(schema.LockKey("late", "")))
	if !schema.Locks.Has(h.store, schema.LockKey("app", "")) {
		t.Error("the running deploy's lock was released")
	}
}

// A step whose agent never answers fails once its deadline passes (ten
// minutes for a network step), and the deploy ends and frees its lock.
func TestRunner_HungStepFailsAtItsDeadline(t *testing.T) {
	agents := newFakeAgents("h1")
	agents.hold["h1"] = true
	h := newMemHarness(t, agents)
	h.start()
	start := h.clock.Now()
	id := submit(t, h, "alice", request("app", map[string][]string{"web": {"h1"}}, "web"))
	waitPending(t, h, "h1")
	h.clock.Advance(9 * time.Minute)
	if rec, _, _ := schema.Deploys.Get(h.store, id); deployEnded(rec) {
		t.Fatalf("deploy ended %v before the step's deadline: %s", h.clock.Now().Sub(start), rec.GetError())
	}
	got := h.waitDeploy(t, id)
	if got.GetDeploy().GetState() != deployv1.State_STATE_FAILED || !strings.Contains(got.GetDeploy().GetError(), "did not finish") {
		t.Fatalf("deploy = %v (%q), want failed: the step did not finish", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
	if d := h.clock.Now().Sub(start); d < 10*time.Minute {
		t.Errorf("the step failed after %v, before its 10m deadline", d)
	}
	if schema.Locks.Has(h.store, schema.LockKey("app", "")) {
		t.Error("the failed deploy still holds its lock")
	}
}

func deployEnded(rec *deployv1.Record) bool {
	switch rec.GetState() {
	case deployv1.State_STATE_SUCCEEDED, deployv1.State_STATE_FAILED, deployv1.State_STATE_CANCELLED:
		return true
	}
	return false
}

// A step on an agent disconnected for longer than the grace fails its
// host; a shorter disconnect does not.
func TestRunner_DisconnectedAgentFailsAfterTheGrace(t *testing.T) {
	agents := newFakeAgents("h1")
	agents.hold["h1"] = true
	h := newMemHarness(t, agents)
	h.start()
	id := submit(t, h, "alice", request("app", map[string][]string{"web": {"h1"}}, "web"))
	waitPending(t, h, "h1")
	agents.setState("h1", 1) // disconnected
	var down time.Time
	h.advanceUntil(t, time.Second, "the deploy to fail", func() error {
		if down.IsZero() {
			down = h.clock.Now()
		}
		if rec, _, _ := schema.Deploys.Get(h.store, id); !deployEnded(rec) {
			return fmt.Errorf("deploy is %v", rec.GetState())
		}
		return nil
	})
	rec, _, _ := schema.Deploys.Get(h.store, id)
	if rec.GetState() != deployv1.State_STATE_FAILED || !strings.Contains(rec.GetError(), "agent h1 disconnected for more than 30s") {
		t.Fatalf("deploy = %v (%q), want failed: disconnected for more than the grace", rec.GetState(), rec.GetError())
	}
	if d := h.clock.Now().Sub(down); d < 30*time.Second {
		t.Errorf("the host failed %v after its agent left, before the 30s grace", d)
	}
}

// Cancel stops a deploy at its running step, without waiting for the
// agent; cancelling again, or an ended deploy, changes nothing.
func TestRunner_CancelStopsTheRunningStep(t *testing.T) {
	agents := newFakeAgents("h1")
	agents.hold["h1"] = true
	h := newMemHarness(t, agents)
	h.start()
	ctx := context.Background()
	id := submit(t, h, "alice", request("app", map[string][]string{"web": {"h1"}}, "web"))
	waitPending(t, h, "h1")
	for range 2 {
		if _, err := h.service("bob").Cancel(ctx, &deployv1.CancelRequest{Id: id}); err != nil {
			t.Fatalf("Cancel = %v", err)
		}
	}
	got := h.waitDeploy(t, id)
	if got.GetDeploy().GetState() != deployv1.State_STATE_CANCELLED || got.GetDeploy().GetCancelledBy() != "bob" {
		t.Fatalf("deploy = %v by %q (%q), want cancelled by bob", got.GetDeploy().GetState(), got.GetDeploy().GetCancelledBy(), got.GetDeploy().GetError())
	}
	again, err := h.service("carol").Cancel(ctx, &deployv1.CancelRequest{Id: id})
	if err != nil || again.GetDeploy().GetState() != deployv1.State_STATE_CANCELLED || again.GetDeploy().GetCancelledBy() != "bob" {
		t.Errorf("Cancel of an ended deploy = %v, %v; want it unchanged", again.GetDeploy(), err)
	}
	audit, _ := h.service("x").Audit(ctx, &deployv1.AuditRequest{Operator: "bob"})
	if n := len(audit.GetEntries()); n != 1 || audit.GetEntries()[0].GetAction() != "cancel requested" {
		t.Errorf("bob's audit = %v, want one cancel request", audit.GetEntries())
	}
}

// A deploy whose secrets record is gone (an operator cannot cause this, a
// bug or a hand-edited store can) fails with a hint instead of running
// with empty secrets.
func TestRunner_MissingSecretsRecordFailsTheDeploy(t *testing.T) {
	agents := newFakeAgents("h1")
	h := newMemHarness(t, agents)
	id := submit(t, h, "alice", request("app", map[string][]string{"web": {"h1"}}, "web"))
	putRecords(t, h.store, schema.Secrets.Delete(id))
	h.start()
	got := h.waitDeploy(t, id)
	if got.GetDeploy().GetState() != deployv1.State_STATE_FAILED || !strings.Contains(got.GetDeploy().GetError(), "submit it again") {
		t.Fatalf("deploy = %v (%q), want failed asking to submit again", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
	if n := agents.maxRuns(); n != 0 {
		t.Errorf("a deploy without its secrets ran %d steps", n)
	}
}
