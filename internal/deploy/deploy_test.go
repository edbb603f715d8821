package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// harness is a 3-node Raft cluster with a Runner on whichever node leads,
// as the controller's leadership loop runs it.
type harness struct {
	t       *testing.T
	cluster *raftstore.TestCluster
	agents  *fakeAgents

	mu      sync.Mutex
	runners map[int]context.CancelFunc
	stopped chan struct{}
}

func newHarness(t *testing.T, agents *fakeAgents) *harness {
	h := &harness{t: t, cluster: raftstore.NewTestCluster(t, 3), agents: agents,
		runners: map[int]context.CancelFunc{}, stopped: make(chan struct{})}
	agents.notify = func() {}
	agents.locate = h.locate
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			h.superviseRunners()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		h.mu.Lock()
		for _, c := range h.runners {
			c()
		}
		h.mu.Unlock()
	})
	return h
}

// locate finds the plan steps whose operation is op on agent, in the
// deploy records of any live node.
func (h *harness) locate(agent string, op *agentv1.Operation) []string {
	for i := 0; i < h.cluster.N(); i++ {
		if s := h.cluster.Store(i); s != nil {
			if out := locateSteps(s, agent, op); len(out) > 0 {
				return out
			}
		}
	}
	return nil
}

// superviseRunners starts a Runner on the leader and stops it on others.
func (h *harness) superviseRunners() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := 0; i < h.cluster.N(); i++ {
		s := h.cluster.Store(i)
		leading := s != nil && s.IsLeader()
		cancel, running := h.runners[i]
		switch {
		case leading && !running:
			ctx, c := context.WithCancel(context.Background())
			h.runners[i] = c
			r := &deploy.Runner{Store: deploy.RaftStore{S: s}, Agents: h.agents, DisconnectGrace: time.Second,
				Logger: slog.New(slog.DiscardHandler)}
			go r.Run(ctx)
		case !leading && running:
			cancel()
			delete(h.runners, i)
		}
	}
}

// store returns a Store on node i whose writes reach the current leader.
func (h *harness) store(i int) deploy.Store {
	return deploy.RaftStore{S: h.cluster.Store(i), WriteFn: h.write, LeaderIndex: h.leaderIndex}
}

func (h *harness) write(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	for {
		l := h.cluster.Leader()
		if l >= 0 {
			res, err := h.cluster.Store(l).Apply(ctx, cmd)
			if !errors.Is(err, raftstore.ErrNotLeader) {
				return res, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (h *harness) leaderIndex(ctx context.Context) (uint64, error) {
	for {
		if l := h.cluster.Leader(); l >= 0 {
			s := h.cluster.Store(l)
			if err := s.ConsistentRead(ctx); err == nil {
				return s.AppliedIndex(), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (h *harness) service(node int, operator string) *deploy.Service {
	return &deploy.Service{Store: h.store(node), Agents: h.agents,
		Caller: func(context.Context) (string, error) { return operator, nil }}
}

// waitDeploy polls until the deploy ends and returns it with its steps.
func (h *harness) waitDeploy(node int, id string) *deployv1.GetResponse {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := h.cluster.Store(node)
		if s != nil {
			resp, err := h.service(node, "x").Get(context.Background(), &deployv1.GetRequest{Id: id})
			if err == nil {
				switch resp.GetDeploy().GetState() {
				case deployv1.State_STATE_SUCCEEDED, deployv1.State_STATE_FAILED, deployv1.State_STATE_CANCELLED:
					return resp
				}
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("deploy %s did not end in 30s", id)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// request is plainRequest with its secrets sealed to the fake agents.
func request(service string, roles map[string][]string, order ...string) *deployv1.Request {
	return sealed(plainRequest(service, roles, order...))
}

// plainRequest is a deploy request with plaintext secrets.
func plainRequest(service string, roles map[string][]string, order ...string) *deployv1.Request {
	req := &deployv1.Request{
		Command: "deploy", Service: service, Version: "v2", Repository: "reg/" + service, Image: "reg/" + service + ":v2",
		LatestTag: "latest", PrimaryRole: order[0], RetainContainers: 5,
		Registry: &specv1.RegistryAuth{Server: "reg", Username: "u", Password: "registry-password"},
	}
	for _, name := range order {
		r := &deployv1.Role{Name: name}
		if name == order[0] {
			r.Proxy = &specv1.ProxyDeploy{Service: service + "-" + name, AppPort: 80}
		}
		for _, h := range roles[name] {
			r.Hosts = append(r.Hosts, &deployv1.HostContainer{Host: h, Container: &specv1.Container{
				Name: service + "-" + name + "-v2", SecretEnv: []*specv1.KeyValue{{Key: "DB_PASSWORD", Value: "hunter2"}},
			}})
		}
		req.Roles = append(req.Roles, r)
	}
	return req
}

func TestDeploy_RunsToCompletionAndReleasesLock(t *testing.T) {
	agents := newFakeAgents("h1", "h2", "h3")
	h := newHarness(t, agents)
	svc := h.service(1, "alice") // submitted through a follower or the leader alike
	ctx := context.Background()
	resp, err := svc.Submit(ctx, &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1", "h2"}, "job": {"h3"}}, "web", "job")})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	got := h.waitDeploy(2, resp.GetDeploy().GetId())
	if got.GetDeploy().GetState() != deployv1.State_STATE_SUCCEEDED {
		t.Fatalf("deploy state = %v (%s), want succeeded", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
	if n := len(got.GetSteps()); n != 18 {
		t.Errorf("deploy has %d step records, want 18", n)
	}
	if m := agents.maxRuns(); m != 1 {
		t.Errorf("some command ran %d times, want once", m)
	}
	h.cluster.WaitFor(t, "the deploy's commands forgotten", func() error {
		agents.mu.Lock()
		defer agents.mu.Unlock()
		if len(agents.forgotten) != 18 {
			return fmt.Errorf("forgot %d commands, want all 18", len(agents.forgotten))
		}
		return nil
	})
	h.cluster.WaitFor(t, "lock released", func() error {
		l, _ := svc.LockStatus(ctx, &deployv1.LockStatusRequest{Service: "app"})
		if l.GetLock() != nil {
			return fmt.Errorf("lock still held: %v", l.GetLock())
		}
		return nil
	})
	h.cluster.WaitFor(t, "secrets deleted", func() error {
		if schema.Secrets.Has(h.cluster.Store(0), resp.GetDeploy().GetId()) {
			return errors.New("the deploy's secrets are still stored after it ended")
		}
		return nil
	})
	audit, err := svc.Audit(ctx, &deployv1.AuditRequest{Service: "app", Operator: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit.GetEntries() {
		actions = append(actions, e.GetAction())
		if strings.Contains(e.String(), "hunter2") || strings.Contains(e.String(), "registry-password") {
			t.Errorf("audit entry holds a secret: %v", e)
		}
	}
	joined := strings.Join(actions, "|")
	for _, want := range []string{"acquired the deploy lock", "deploy submitted", "boot app-web-v2", "deploy finished", "released the deploy lock"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit actions %q lack %q", joined, want)
		}
	}
	rec := got.GetDeploy().GetRequest()
	if strings.Contains(rec.String(), "hunter2") || strings.Contains(rec.String(), "registry-password") {
		t.Errorf("the stored deploy record holds a secret: %v", rec)
	}
}

// The recorded plan carries every step's operation without its secrets; the
// runner sends the operations with the secrets resolved from the deploy's
// secrets record.
func TestDeploy_RecordedPlanCarriesOperationsWithoutSecrets(t *testing.T) {
	agents := newFakeAgents("h1")
	h := newHarness(t, agents)
	svc := h.service(0, "alice")
	resp, err := svc.Submit(context.Background(), &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1"}}, "web")})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	got := h.waitDeploy(1, resp.GetDeploy().GetId())
	if got.GetDeploy().GetState() != deployv1.State_STATE_SUCCEEDED {
		t.Fatalf("deploy state = %v (%s), want succeeded", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
	for _, ph := range got.GetDeploy().GetPlan().GetPhases() {
		for _, s := range ph.GetSteps() {
			if s.GetOp() == nil {
				t.Errorf("recorded step %s has no operation", s.GetId())
			}
			if str := s.GetOp().String(); strings.Contains(str, "hunter2") || strings.Contains(str, "registry-password") {
				t.Errorf("recorded step %s holds a secret: %s", s.GetId(), str)
			}
		}
	}
	agents.mu.Lock()
	defer agents.mu.Unlock()
	boot := agents.sent["h1/deploy."+resp.GetDeploy().GetId()+".boot/web/h1"]
	if v := boot.GetBootApp().GetContainer().GetSecretEnv()[0].GetValue(); v != "hunter2" {
		t.Errorf("boot step sent with DB_PASSWORD = %q, want the secret", v)
	}
	pull := agents.sent["h1/deploy."+resp.GetDeploy().GetId()+".pull/h1"]
	if p := pull.GetPullImage().GetAuth().GetPassword(); p != "registry-password" {
		t.Errorf("pull step sent with registry password %q, want the secret", p)
	}
}

func TestDeploy_SecondDeployIsToldWhoHoldsTheLock(t *testing.T) {
	agents := newFakeAgents("h1")
	agents.hold["h1"] = true
	h := newHarness(t, agents)
	ctx := context.Background()
	req := request("app", map[string][]string{"web": {"h1"}}, "web")
	first, err := h.service(0, "alice").Submit(ctx, &deployv1.SubmitRequest{Request: req})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.service(2, "bob").Submit(ctx, &deployv1.SubmitRequest{Request: req})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "locked by alice") || !strings.Contains(err.Error(), first.GetDeploy().GetId()) {
		t.Fatalf("second Submit error = %v, want FailedPrecondition naming alice and the deploy", err)
	}
	// A different service deploys concurrently.
	other := request("other", map[string][]string{"web": {"h1"}}, "web")
	if _, err := h.service(2, "bob").Submit(ctx, &deployv1.SubmitRequest{Request: other}); err != nil {
		t.Fatalf("Submit(other service): %v", err)
	}
	agents.release("h1")
	if got := h.waitDeploy(0, first.GetDeploy().GetId()); got.GetDeploy().GetState() != deployv1.State_STATE_SUCCEEDED {
		t.Fatalf("first deploy = %v", got.GetDeploy())
	}
}

func TestDeploy_SurvivesLeaderLoss(t *testing.T) {
	agents := newFakeAgents("h1", "h2")
	agents.hold["h2"] = true // h2's steps stay pending until the leader is gone
	h := newHarness(t, agents)
	ctx := context.Background()
	resp, err := h.service(0, "alice").Submit(ctx, &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1", "h2"}}, "web")})
	if err != nil {
		t.Fatal(err)
	}
	var step string // the step h2 holds when the leader dies
	h.cluster.WaitFor(t, "h2 has a pending step", func() error {
		agents.mu.Lock()
		defer agents.mu.Unlock()
		if len(agents.pending["h2"]) == 0 {
			return errors.New("no pending command")
		}
		step = agents.stepKey("h2", agents.pending["h2"][0].op)
		return nil
	})
	if strings.HasPrefix(step, "unlocated:") {
		t.Fatalf("h2's pending operation matches no recorded step")
	}
	old := h.cluster.Leader()
	h.cluster.Kill(old)
	h.cluster.WaitForLeader(t)
	agents.release("h2")
	survivor := (old + 1) % 3
	got := h.waitDeploy(survivor, resp.GetDeploy().GetId())
	if got.GetDeploy().GetState() != deployv1.State_STATE_SUCCEEDED {
		t.Fatalf("deploy after leader loss = %v (%s), want succeeded", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
	// The new leader sent the interrupted step again (else this test
	// proves nothing), under the id it had: the agent ran it once.
	if n := agents.delivered(step); n < 2 {
		t.Errorf("step %s was sent %d times, want again by the new leader", step, n)
	}
	if m := agents.maxRuns(); m != 1 {
		t.Errorf("a step ran %d times across the failover, want once (re-sent under a new command id?)", m)
	}
}

func TestDeploy_FailedBootKeepsGoingNowhere(t *testing.T) {
	agents := newFakeAgents("h1", "h2")
	agents.do = func(agent string, op *agentv1.Operation) *agentv1.Result {
		if op.GetBootApp() != nil && agent == "h2" {
			return &agentv1.Result{Error: "target failed to become healthy within configured timeout (30s)", Detail: "last log line"}
		}
		return nil
	}
	h := newHarness(t, agents)
	ctx := context.Background()
	resp, err := h.service(0, "alice").Submit(ctx, &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1", "h2"}}, "web")})
	if err != nil {
		t.Fatal(err)
	}
	got := h.waitDeploy(0, resp.GetDeploy().GetId())
	if got.GetDeploy().GetState() != deployv1.State_STATE_FAILED || !strings.Contains(got.GetDeploy().GetError(), "h2: target failed to become healthy") {
		t.Fatalf("deploy = %v (%q), want failed naming h2's health error", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
	for _, s := range got.GetSteps() {
		if strings.HasPrefix(s.GetStepId(), "tag/") || strings.HasPrefix(s.GetStepId(), "prune/") {
			t.Errorf("step %s ran after a failed boot group", s.GetStepId())
		}
	}
	h.cluster.WaitFor(t, "lock released", func() error {
		if schema.Locks.Has(h.cluster.Store(0), "app") {
			return errors.New("lock still held")
		}
		return nil
	})
}

func TestDeploy_DisconnectedAgentFailsItsHost(t *testing.T) {
	agents := newFakeAgents("h1")
	agents.hold["h1"] = true
	h := newHarness(t, agents)
	resp, err := h.service(0, "alice").Submit(context.Background(), &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1"}}, "web")})
	if err != nil {
		t.Fatal(err)
	}
	agents.setState("h1", 1) // disconnected
	got := h.waitDeploy(0, resp.GetDeploy().GetId())
	if got.GetDeploy().GetState() != deployv1.State_STATE_FAILED || !strings.Contains(got.GetDeploy().GetError(), "agent h1 disconnected") {
		t.Fatalf("deploy = %v (%q), want failed: agent disconnected", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
}

func TestDeploy_Cancel(t *testing.T) {
	agents := newFakeAgents("h1")
	agents.hold["h1"] = true
	h := newHarness(t, agents)
	ctx := context.Background()
	svc := h.service(1, "alice")
	resp, err := svc.Submit(ctx, &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1"}}, "web")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.service(2, "bob").Cancel(ctx, &deployv1.CancelRequest{Id: resp.GetDeploy().GetId()}); err != nil {
		t.Fatal(err)
	}
	agents.release("h1")
	got := h.waitDeploy(1, resp.GetDeploy().GetId())
	if got.GetDeploy().GetState() != deployv1.State_STATE_CANCELLED || !strings.Contains(got.GetDeploy().GetError(), "bob") {
		t.Fatalf("deploy = %v (%q), want cancelled by bob", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
}

func TestDeploy_UnknownHostRefusedBeforeAnythingChanges(t *testing.T) {
	h := newHarness(t, newFakeAgents("h1"))
	svc := h.service(0, "alice")
	_, err := svc.Submit(context.Background(), &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1", "ghost"}}, "web")})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("Submit error = %v, want Unavailable naming ghost", err)
	}
	if list, _ := svc.List(context.Background(), &deployv1.ListRequest{}); len(list.GetDeploys()) != 0 {
		t.Errorf("a refused deploy was recorded: %v", list.GetDeploys())
	}
}

func TestLock_ManualLockBlocksDeploys(t *testing.T) {
	h := newHarness(t, newFakeAgents("h1"))
	ctx := context.Background()
	svc := h.service(0, "alice")
	if _, err := svc.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: "app", Message: "db migration"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.service(1, "bob").Submit(ctx, &deployv1.SubmitRequest{Request: request("app", map[string][]string{"web": {"h1"}}, "web")})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "db migration") {
		t.Fatalf("Submit under manual lock = %v, want FailedPrecondition with the message", err)
	}
	if _, err := svc.ReleaseLock(ctx, &deployv1.ReleaseLockRequest{Service: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ReleaseLock(ctx, &deployv1.ReleaseLockRequest{Service: "app"}); status.Code(err) != codes.NotFound {
		t.Fatalf("second ReleaseLock = %v, want NotFound", err)
	}
}

func TestRedactOperation(t *testing.T) {
	op := &agentv1.Operation{Op: &agentv1.Operation_BootAccessory{BootAccessory: &agentv1.BootAccessory{
		Container: &specv1.Container{SecretEnv: []*specv1.KeyValue{{Key: "PW", Value: "hunter2"}}, Files: []*specv1.File{{Path: "x", Content: []byte("tls-key")}}},
		Auth:      &specv1.RegistryAuth{Server: "r", Username: "u", Password: "registry-password"},
	}}}
	got := deploy.RedactOperation(op).String()
	for _, secret := range []string{"hunter2", "tls-key", "registry-password"} {
		if strings.Contains(got, secret) {
			t.Errorf("RedactOperation kept %q: %s", secret, got)
		}
	}
	if !strings.Contains(op.String(), "hunter2") {
		t.Errorf("RedactOperation changed its argument")
	}
}
