package scheduler_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/scheduler"
	"github.com/kctl-dev/kctl/internal/spec"
)

func request(roles map[string][]string, order ...string) *deployv1.Request {
	req := &deployv1.Request{
		Command: "deploy", Service: "app", Version: "v2", Repository: "reg/app", Image: "reg/app:v2",
		LatestTag: "latest", PrimaryRole: order[0], RetainContainers: 5,
	}
	for _, name := range order {
		r := &deployv1.Role{Name: name}
		if name == order[0] {
			r.Proxy = &specv1.ProxyDeploy{Service: "app-" + name, AppPort: 80}
		}
		for _, h := range roles[name] {
			r.Hosts = append(r.Hosts, &deployv1.HostContainer{Host: h, Container: &specv1.Container{Name: "app-" + name + "-v2"}})
		}
		req.Roles = append(req.Roles, r)
	}
	return req
}

func connected(hosts ...string) scheduler.FleetMap {
	m := scheduler.FleetMap{}
	for _, h := range hosts {
		m[h] = scheduler.AgentConnected
	}
	return m
}

func phaseNames(p *deployv1.Plan) string {
	var names []string
	for _, ph := range p.GetPhases() {
		var ids []string
		for _, s := range ph.GetSteps() {
			ids = append(ids, s.GetId())
		}
		names = append(names, ph.GetName()+"["+strings.Join(ids, " ")+"]")
	}
	return strings.Join(names, "\n")
}

func TestPlan_KamalOrder(t *testing.T) {
	req := request(map[string][]string{"web": {"w1", "w2"}, "job": {"j1"}}, "web", "job")
	req.ProxyHosts = []*deployv1.ProxyHost{{Host: "w1"}, {Host: "w2"}}
	plan, err := scheduler.Plan(req, connected("w1", "w2", "j1"))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	got := phaseNames(plan)
	want := strings.Join([]string{
		"network[network/w1 network/w2 network/j1]",
		"pull[pull/w1 pull/w2 pull/j1]",
		"proxy[proxy/w1 proxy/w2]",
		"stale[stale/web/w1 stale/web/w2 stale/job/j1]",
		"boot 1/1[boot/web/w1 boot/web/w2 boot/job/j1]",
		"tag[tag/w1 tag/w2 tag/j1]",
		"prune[prune/w1 prune/w2 prune/j1]",
	}, "\n")
	if got != want {
		t.Errorf("Plan phases =\n%s\nwant\n%s", got, want)
	}
	job := plan.GetPhases()[4].GetSteps()[2]
	if fmt.Sprint(job.GetAfterAny()) != "[boot/web/w1 boot/web/w2]" {
		t.Errorf("job boot AfterAny = %v, want the primary role's boots (the barrier)", job.GetAfterAny())
	}
	if ba := job.GetOp().GetBootApp(); ba == nil || ba.GetProxy() != nil {
		t.Errorf("job boot op = %v, want BootApp without proxy", job.GetOp())
	}
}

func TestPlan_BootLimit(t *testing.T) {
	req := request(map[string][]string{"web": {"h1", "h2", "h3"}}, "web")
	req.Boot = &deployv1.Boot{Limit: 1, WaitSeconds: 2}
	plan, err := scheduler.Plan(req, connected("h1", "h2", "h3"))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	var boots []string
	for _, ph := range plan.GetPhases() {
		if strings.HasPrefix(ph.GetName(), "boot") {
			boots = append(boots, fmt.Sprintf("%s%v wait=%d", ph.GetName(), ph.GetGroupHosts(), ph.GetWaitSeconds()))
		}
	}
	want := "[boot 1/3[h1] wait=2 boot 2/3[h2] wait=2 boot 3/3[h3] wait=0]"
	if got := fmt.Sprint(boots); got != want {
		t.Errorf("boot phases = %s, want %s", got, want)
	}
}

func TestPlan_SequentialRolesOnAHost(t *testing.T) {
	req := request(map[string][]string{"web": {"h1"}, "job": {"h1"}}, "web", "job")
	plan, err := scheduler.Plan(req, connected("h1"))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	var job *deployv1.Step
	for _, s := range scheduler.Steps(plan) {
		if s.GetId() == "boot/job/h1" {
			job = s
		}
	}
	if job == nil || fmt.Sprint(job.GetAfter()) != "[boot/web/h1]" {
		t.Fatalf("boot/job/h1 = %v, want After [boot/web/h1]", job)
	}
	req.Boot = &deployv1.Boot{ParallelRoles: true}
	plan, err = scheduler.Plan(req, connected("h1"))
	if err != nil {
		t.Fatalf("Plan(parallel_roles): %v", err)
	}
	job = nil
	for _, s := range scheduler.Steps(plan) {
		if s.GetId() == "boot/job/h1" {
			job = s
		}
	}
	if job == nil {
		t.Fatal("with parallel_roles, the plan has no step boot/job/h1")
	}
	if len(job.GetAfter()) != 0 {
		t.Errorf("with parallel_roles, boot/job/h1 After = %v, want none", job.GetAfter())
	}
}

func TestPlan_RedeployAndRollbackSkip(t *testing.T) {
	req := request(map[string][]string{"web": {"h1"}}, "web")
	req.ProxyHosts = []*deployv1.ProxyHost{{Host: "h1"}}
	req.SkipPull, req.SkipProxyBoot, req.SkipPrune = true, true, true
	plan, err := scheduler.Plan(req, connected("h1"))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	want := "network[network/h1]\nstale[stale/web/h1]\nboot 1/1[boot/web/h1]\ntag[tag/h1]"
	if got := phaseNames(plan); got != want {
		t.Errorf("phases =\n%s\nwant\n%s", got, want)
	}
	if !scheduler.Steps(plan)[2].GetOp().GetBootApp().GetRollback() {
		t.Errorf("rollback boot should not pull")
	}
}

func TestPlan_NamesMissingAgents(t *testing.T) {
	req := request(map[string][]string{"web": {"h1", "h2", "h3"}}, "web")
	fleet := scheduler.FleetMap{"h1": scheduler.AgentConnected, "h2": scheduler.AgentDisconnected}
	_, err := scheduler.Plan(req, fleet)
	if !errors.Is(err, scheduler.ErrUnplaceable) {
		t.Fatalf("Plan error = %v, want ErrUnplaceable", err)
	}
	for _, want := range []string{"no agent is enrolled for h3", "the agent of h2 is not connected"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Plan error = %q, want it to contain %q", err, want)
		}
	}
}

func TestPlan_Invalid(t *testing.T) {
	_, err := scheduler.Plan(&deployv1.Request{}, scheduler.FleetMap{})
	if !errors.Is(err, scheduler.ErrInvalidRequest) {
		t.Fatalf("Plan(empty) error = %v, want ErrInvalidRequest", err)
	}
}

func TestGroups(t *testing.T) {
	tests := []struct {
		hosts []string
		limit uint32
		want  string
	}{
		{[]string{"a", "b", "c"}, 0, "[[a b c]]"},
		{[]string{"a", "b", "c"}, 2, "[[a b] [c]]"},
		{[]string{"a", "b", "c"}, 5, "[[a b c]]"},
		{nil, 1, "[]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(scheduler.Groups(tt.hosts, tt.limit)); got != tt.want {
			t.Errorf("Groups(%v, %d) = %s, want %s", tt.hosts, tt.limit, got, tt.want)
		}
	}
}

func TestAuthFor(t *testing.T) {
	auth := &specv1.RegistryAuth{Server: "ghcr.io", Username: "u", Password: "p"}
	tests := []struct {
		image string
		want  bool
	}{
		{"ghcr.io/team/app:v1", true},
		{"basecamp/kamal-proxy:v0.9.2", false},
		{"ghcr.io.evil.example/x:v1", false},
	}
	for _, tt := range tests {
		if got := spec.AuthFor(tt.image, auth) != nil; got != tt.want {
			t.Errorf("spec.AuthFor(%q) sends credentials = %v, want %v", tt.image, got, tt.want)
		}
	}
	if spec.AuthFor("ghcr.io/x", nil) != nil {
		t.Errorf("spec.AuthFor(nil auth) != nil")
	}
}
