package deploy_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/schema"
)

func wantStatus(t testing.TB, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s = %v, want %v containing %q", what, err, code, msg)
	}
}

// The deploy RPCs refuse what they cannot do with a code and a hint, and
// change nothing when they refuse.
func TestService_Refusals(t *testing.T) {
	agents := newFakeAgents("h1")
	agents.hold["h1"] = true
	h := newMemHarness(t, agents)
	h.start()
	ctx := context.Background()
	svc := h.service("alice")
	running := submit(t, h, "alice", request("app", map[string][]string{"web": {"h1"}}, "web"))

	bad := request("app", map[string][]string{"web": {"h1"}}, "web")
	bad.Version, bad.Service = "", "other"
	_, err := svc.Submit(ctx, &deployv1.SubmitRequest{Request: bad})
	wantStatus(t, "Submit without a version", err, codes.InvalidArgument, "version is empty")
	_, err = svc.Submit(ctx, &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1"}}, "web")})
	wantStatus(t, "Submit under a running deploy's lock", err, codes.FailedPrecondition, running)
	anon := &deploy.Service{Store: h.store, Agents: agents, Caller: func(context.Context) (string, error) { return "", errors.New("no certificate") }}
	_, err = anon.Submit(ctx, &deployv1.SubmitRequest{Request: request("x", map[string][]string{"web": {"h1"}}, "web")})
	wantStatus(t, "Submit without a caller", err, codes.Unauthenticated, "no certificate")
	_, err = anon.Cancel(ctx, &deployv1.CancelRequest{Id: running})
	wantStatus(t, "Cancel without a caller", err, codes.Unauthenticated, "no certificate")

	_, err = svc.Get(ctx, &deployv1.GetRequest{Id: "nope"})
	wantStatus(t, "Get of an unknown deploy", err, codes.NotFound, "kctl deploys")
	err = svc.Watch(&deployv1.WatchRequest{Id: "nope"}, &watchStream{ctx: ctx})
	wantStatus(t, "Watch of an unknown deploy", err, codes.NotFound, "nope")
	_, err = svc.Cancel(ctx, &deployv1.CancelRequest{Id: "nope"})
	wantStatus(t, "Cancel of an unknown deploy", err, codes.NotFound, "nope")

	_, err = svc.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: "db", Message: "  "})
	wantStatus(t, "AcquireLock without a message", err, codes.InvalidArgument, "kctl lock acquire -m")
	_, err = svc.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: "app", Message: "mine"})
	wantStatus(t, "AcquireLock of a held lock", err, codes.FailedPrecondition, "alice")
	_, err = svc.ReleaseLock(ctx, &deployv1.ReleaseLockRequest{Service: "app"})
	wantStatus(t, "ReleaseLock of a running deploy's lock", err, codes.FailedPrecondition, "kctl deploys cancel "+running)
	if !schema.Locks.Has(h.store, "app") {
		t.Fatal("a refused ReleaseLock released the lock")
	}
	if list, _ := svc.List(ctx, &deployv1.ListRequest{}); len(list.GetDeploys()) != 1 {
		t.Errorf("refused submits were recorded: %v", list.GetDeploys())
	}
}

// List and Audit filter and limit as asked; LockStatus reports a lock
// taken by hand until it is released.
func TestService_ListAuditAndLockQueries(t *testing.T) {
	agents := newFakeAgents("h1", "h2")
	h := newMemHarness(t, agents)
	h.start()
	ctx := context.Background()
	a := submit(t, h, "alice", request("app", map[string][]string{"web": {"h1"}}, "web"))
	h.waitDeploy(t, a)
	b := submit(t, h, "bob", request("api", map[string][]string{"web": {"h2"}}, "web"))
	h.waitDeploy(t, b)
	svc := h.service("carol")
	for _, c := range []struct {
		in   *deployv1.ListRequest
		want []string
	}{
		{&deployv1.ListRequest{}, []string{b, a}},
		{&deployv1.ListRequest{Service: "app"}, []string{a}},
		{&deployv1.ListRequest{Limit: 1}, []string{b}},
	} {
		list, err := svc.List(ctx, c.in)
		var got []string
		for _, d := range list.GetDeploys() {
			got = append(got, d.GetId())
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("List(%v) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct {
		in    *deployv1.AuditRequest
		check func(*deployv1.AuditEntry) bool
	}{
		{&deployv1.AuditRequest{Service: "api"}, func(e *deployv1.AuditEntry) bool { return e.GetService() == "api" }},
		{&deployv1.AuditRequest{Operator: "alice"}, func(e *deployv1.AuditEntry) bool { return e.GetOperator() == "alice" }},
		{&deployv1.AuditRequest{Host: "h2"}, func(e *deployv1.AuditEntry) bool { return e.GetHost() == "h2" }},
		{&deployv1.AuditRequest{Destination: "staging"}, func(e *deployv1.AuditEntry) bool { return false }},
	} {
		audit, err := svc.Audit(ctx, c.in)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range audit.GetEntries() {
			if !c.check(e) {
				t.Errorf("Audit(%v) returned %v", c.in, e)
			}
		}
		if len(audit.GetEntries()) == 0 && c.in.GetDestination() == "" {
			t.Errorf("Audit(%v) returned nothing", c.in)
		}
	}
	all, _ := svc.Audit(ctx, &deployv1.AuditRequest{})
	last, _ := svc.Audit(ctx, &deployv1.AuditRequest{Limit: 2})
	if n := len(all.GetEntries()); len(last.GetEntries()) != 2 || last.GetEntries()[1].String() != all.GetEntries()[n-1].String() {
		t.Errorf("Audit(limit 2) = %v, want the last two of %d", last.GetEntries(), n)
	}
	since, _ := svc.Audit(ctx, &deployv1.AuditRequest{SinceUnixMillis: all.GetEntries()[len(all.GetEntries())-1].GetUnixMillis() + 1})
	if len(since.GetEntries()) != 0 {
		t.Errorf("Audit(since after the last entry) = %v, want none", since.GetEntries())
	}

	if l, err := svc.LockStatus(ctx, &deployv1.LockStatusRequest{Service: "db", Destination: "staging"}); err != nil || l.GetLock() != nil {
		t.Errorf("LockStatus of a free lock = %v, %v", l, err)
	}
	if _, err := svc.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: "db", Destination: "staging", Message: "migrating"}); err != nil {
		t.Fatal(err)
	}
	l, err := svc.LockStatus(ctx, &deployv1.LockStatusRequest{Service: "db", Destination: "staging"})
	if err != nil || l.GetLock().GetHolder() != "carol" || l.GetLock().GetMessage() != "migrating" {
		t.Errorf("LockStatus = %v, %v; want held by carol: migrating", l, err)
	}
	if _, err := svc.ReleaseLock(ctx, &deployv1.ReleaseLockRequest{Service: "db", Destination: "staging"}); err != nil {
		t.Errorf("ReleaseLock = %v", err)
	}
}

// Versions asks every host and returns the versions all of them hold,
// newest first; a host that fails or is unknown fails the query.
func TestService_Versions(t *testing.T) {
	agents := newFakeAgents("h1", "h2")
	held := map[string][]string{"h1": {"v3", "v2", "v1"}, "h2": {"v3", "v1"}}
	agents.do = func(agent string, op *agentv1.Operation) *agentv1.Result {
		if op.GetListVersions() == nil {
			return nil
		}
		if agent == "h2" && op.GetListVersions().GetRole() == "broken" {
			return &agentv1.Result{Error: "engine unreachable"}
		}
		return &agentv1.Result{Ok: true, Versions: held[agent]}
	}
	h := newMemHarness(t, agents)
	svc := h.service("alice")
	ctx := context.Background()
	roles := func(role string, hosts ...string) map[string]*deployv1.HostList {
		return map[string]*deployv1.HostList{role: {Hosts: hosts}}
	}
	got, err := svc.Versions(ctx, &deployv1.VersionsRequest{Service: "app", Roles: roles("web", "h1", "h2")})
	if err != nil || !slices.Equal(got.GetVersions(), []string{"v3", "v1"}) {
		t.Errorf("Versions = %v, %v; want [v3 v1]", got.GetVersions(), err)
	}
	_, err = svc.Versions(ctx, &deployv1.VersionsRequest{Service: "app", Roles: roles("broken", "h1", "h2")})
	wantStatus(t, "Versions with a failing host", err, codes.Unavailable, "h2: engine unreachable")
	_, err = svc.Versions(ctx, &deployv1.VersionsRequest{Service: "app", Roles: roles("web", "ghost")})
	wantStatus(t, "Versions with an unknown host", err, codes.Unavailable, "ghost")
}
