package deploy_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
	"github.com/kctl-dev/kctl/internal/deploy"
)

func opMaintenance(msg string) *agentv1.Operation {
	return &agentv1.Operation{Op: &agentv1.Operation_ProxyControl{ProxyControl: &agentv1.ProxyControl{
		Action: agentv1.ProxyControl_ACTION_STOP, Message: msg,
	}}}
}

func opBootProxy() *agentv1.Operation {
	return &agentv1.Operation{Op: &agentv1.Operation_BootProxy{BootProxy: &agentv1.BootProxy{}}}
}

// lifecycleRequest is a lifecycle command of service "app" with one step
// per host, each setting state (with msg) for role web.
func lifecycleRequest(command string, op *agentv1.Operation, state deployv1.DesiredState_State, msg string, hosts ...string) *deployv1.Request {
	ph := &deployv1.Phase{Name: command}
	lc := &deployv1.Lifecycle{Phases: []*deployv1.Phase{ph}}
	for _, h := range hosts {
		ph.Steps = append(ph.Steps, &deployv1.Step{Host: h, Role: "web", Action: command, Op: op})
		lc.Desired = append(lc.Desired, &deployv1.DesiredState{Service: "app", Role: "web", Host: h, State: state, Message: msg})
	}
	return &deployv1.Request{Command: command, Service: "app", Lifecycle: lc}
}

// desired renders the recorded desired state of app as sorted
// "role/host=STATE(message) by operator via command" lines.
func desired(t testing.TB, l *deploy.Lifecycle) string {
	t.Helper()
	resp, err := l.Desired(context.Background(), &opsv1.DesiredRequest{Service: "app"})
	if err != nil {
		t.Fatalf("Desired = %v", err)
	}
	var out []string
	for _, d := range resp.GetStates() {
		out = append(out, fmt.Sprintf("%s/%s=%s(%s) by %s via %s", d.GetRole(), d.GetHost(),
			strings.TrimPrefix(d.GetState().String(), "STATE_"), d.GetMessage(), d.GetOperator(), d.GetCommand()))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// Each LifecycleService method takes only commands of its kind whose every
// step is an operation of that kind, and records nothing when it refuses.
func TestLifecycle_RefusesStepsOfAnotherKind(t *testing.T) {
	agents := newFakeAgents("h1")
	h := newMemHarness(t, agents)
	l := &deploy.Lifecycle{Deploys: h.service("alice")}
	ctx := context.Background()
	maint := lifecycleRequest("app maintenance", opMaintenance("m"), deployv1.DesiredState_STATE_MAINTENANCE, "m", "h1")
	tests := []struct {
		name string
		call func(context.Context, *opsv1.ActionRequest) (*opsv1.ActionResponse, error)
		req  *deployv1.Request
		want string
	}{
		{"app RPC, proxy command", l.App, lifecycleRequest("proxy reboot", opBootProxy(), deployv1.DesiredState_STATE_RUNNING, "", "h1"), `"proxy reboot" is not a app command`},
		{"app RPC, proxy boot step", l.App, lifecycleRequest("app stop", opBootProxy(), deployv1.DesiredState_STATE_STOPPED, "", "h1"), `step "app stop" on h1 is not a app operation`},
		{"proxy RPC, app command", l.Proxy, maint, `"app maintenance" is not a proxy command`},
		{"accessory RPC, proxy step", l.Accessory, lifecycleRequest("accessory reboot", opBootProxy(), deployv1.DesiredState_STATE_RUNNING, "", "h1"), "is not a accessory operation"},
		{"app RPC, no phases", l.App, &deployv1.Request{Command: "app stop", Service: "app"}, "the request has no lifecycle phases"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.call(ctx, &opsv1.ActionRequest{Request: tt.req})
			wantStatus(t, tt.name, err, codes.InvalidArgument, tt.want)
		})
	}
	if list, _ := h.service("x").List(ctx, &deployv1.ListRequest{}); len(list.GetDeploys()) != 0 {
		t.Errorf("refused commands were recorded: %v", list.GetDeploys())
	}
	if got := desired(t, l); got != "" {
		t.Errorf("refused commands recorded desired state:\n%s", got)
	}
}

// A lifecycle command records the desired state it sets (with its
// operator and command), runs to its end under the lock, and a later
// deploy resets every host it boots to running.
func TestLifecycle_DesiredStateAndDeployReset(t *testing.T) {
	agents := newFakeAgents("h1", "h2")
	h := newMemHarness(t, agents)
	h.start()
	ctx := context.Background()
	l := &deploy.Lifecycle{Deploys: h.service("alice")}

	resp, err := l.App(ctx, &opsv1.ActionRequest{Request: lifecycleRequest("app maintenance", opMaintenance("back soon"),
		deployv1.DesiredState_STATE_MAINTENANCE, "back soon", "h1", "h2")})
	if err != nil {
		t.Fatalf("App(maintenance) = %v", err)
	}
	want := "web/h1=MAINTENANCE(back soon) by alice via app maintenance\nweb/h2=MAINTENANCE(back soon) by alice via app maintenance"
	if got := desired(t, l); got != want {
		t.Errorf("after app maintenance, desired =\n%s\nwant\n%s", got, want)
	}
	if got := h.waitDeploy(t, resp.GetDeploy().GetId()).GetDeploy().GetState(); got != deployv1.State_STATE_SUCCEEDED {
		t.Fatalf("app maintenance ended %v", got)
	}
	if n := agents.delivered(resp.GetDeploy().GetId() + "/0/h1/1"); n == 0 {
		t.Errorf("the maintenance step on h1 was never sent")
	}

	stop := lifecycleRequest("app stop", &agentv1.Operation{Op: &agentv1.Operation_AppControl{AppControl: &agentv1.AppControl{
		Action: agentv1.AppControl_ACTION_STOP, Service: "app", Role: "web"}}}, deployv1.DesiredState_STATE_STOPPED, "", "h2")
	resp, err = (&deploy.Lifecycle{Deploys: h.service("bob")}).App(ctx, &opsv1.ActionRequest{Request: stop})
	if err != nil {
		t.Fatalf("App(stop) = %v", err)
	}
	h.waitDeploy(t, resp.GetDeploy().GetId())
	want = "web/h1=MAINTENANCE(back soon) by alice via app maintenance\nweb/h2=STOPPED() by bob via app stop"
	if got := desired(t, l); got != want {
		t.Errorf("after app stop on h2, desired =\n%s\nwant\n%s", got, want)
	}

	id := submit(t, h, "carol", request("app", map[string][]string{"web": {"h1", "h2"}}, "web"))
	want = "web/h1=RUNNING() by carol via deploy\nweb/h2=RUNNING() by carol via deploy"
	if got := desired(t, l); got != want {
		t.Errorf("after a deploy, desired =\n%s\nwant\n%s", got, want)
	}
	h.waitDeploy(t, id)

	audit, err := h.service("x").Audit(ctx, &deployv1.AuditRequest{Service: "app"})
	if err != nil {
		t.Fatal(err)
	}
	var ends []string
	for _, e := range audit.GetEntries() {
		if strings.HasSuffix(e.GetAction(), " finished") {
			ends = append(ends, e.GetAction())
		}
	}
	sort.Strings(ends)
	if got, want := strings.Join(ends, "|"), "app maintenance finished|app stop finished|deploy finished"; got != want {
		t.Errorf("audit ends = %q, want %q", got, want)
	}
}
