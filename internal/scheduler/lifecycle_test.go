package scheduler_test

import (
	"errors"
	"strings"
	"testing"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

func stopOp() *agentv1.Operation {
	return &agentv1.Operation{Op: &agentv1.Operation_AppControl{AppControl: &agentv1.AppControl{
		Action: agentv1.AppControl_ACTION_STOP, Service: "app", Role: "web",
	}}}
}

func lifecycleRequest(phases ...*deployv1.Phase) *deployv1.Request {
	return &deployv1.Request{Command: "app stop", Service: "app", Lifecycle: &deployv1.Lifecycle{Phases: phases}}
}

// A lifecycle command's plan is kctl's phases in order, empty phases
// dropped, steps given ids `<phase>/<host>/<n>` unless they carry one.
func TestPlan_LifecyclePhasesAndIDs(t *testing.T) {
	req := lifecycleRequest(
		&deployv1.Phase{Name: "stop w1", GroupHosts: []string{"w1"}, Steps: []*deployv1.Step{
			{Host: "w1", Role: "web", Action: "stop", Op: stopOp()},
			{Host: "w1", Role: "web", Action: "stop again", Op: stopOp()},
		}},
		&deployv1.Phase{Name: "nothing"},
		&deployv1.Phase{Name: "stop w2", Steps: []*deployv1.Step{
			{Host: "w2", Role: "web", Action: "stop", Op: stopOp()},
			{Id: "mine", Host: "w2", Role: "web", Action: "named", Op: stopOp()},
		}},
	)
	plan, err := scheduler.Plan(req, connected("w1", "w2"))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if got, want := phaseNames(plan), "stop w1[0/w1/1 0/w1/2]\nstop w2[2/w2/1 mine]"; got != want {
		t.Fatalf("plan =\n%s\nwant\n%s", got, want)
	}
	if g := plan.GetPhases()[0].GetGroupHosts(); len(g) != 1 || g[0] != "w1" {
		t.Errorf("phase 0 group hosts = %v, want [w1]", g)
	}
	if s := plan.GetPhases()[1].GetSteps()[0]; s.GetOp().GetAppControl().GetAction() != agentv1.AppControl_ACTION_STOP || s.GetRole() != "web" {
		t.Errorf("step lost its operation or role: %v", s)
	}
}

// A lifecycle command is refused, naming the problem, when a step has no
// host or operation, ids repeat, a desired state is of another service, or
// a host has no connected agent.
func TestPlan_LifecycleRefusals(t *testing.T) {
	step := func(host string, op *agentv1.Operation) *deployv1.Step {
		return &deployv1.Step{Id: "", Host: host, Action: "stop", Op: op}
	}
	tests := []struct {
		name string
		req  *deployv1.Request
		err  error
		want string
	}{
		{"no host", lifecycleRequest(&deployv1.Phase{Steps: []*deployv1.Step{step("", stopOp())}}), scheduler.ErrInvalidRequest, "has no host"},
		{"no operation", lifecycleRequest(&deployv1.Phase{Steps: []*deployv1.Step{step("w1", &agentv1.Operation{})}}), scheduler.ErrInvalidRequest, "has no operation"},
		{"id twice", lifecycleRequest(&deployv1.Phase{Steps: []*deployv1.Step{
			{Id: "a", Host: "w1", Op: stopOp()}, {Id: "a", Host: "w1", Op: stopOp()},
		}}), scheduler.ErrInvalidRequest, `"a" is used twice`},
		{"other service's desired", func() *deployv1.Request {
			r := lifecycleRequest(&deployv1.Phase{Steps: []*deployv1.Step{step("w1", stopOp())}})
			r.Lifecycle.Desired = []*deployv1.DesiredState{{Service: "other", Role: "web", Host: "w1"}}
			return r
		}(), scheduler.ErrInvalidRequest, "not of service app"},
		{"other destination's desired", func() *deployv1.Request {
			r := lifecycleRequest(&deployv1.Phase{Steps: []*deployv1.Step{step("w1", stopOp())}})
			r.Lifecycle.Desired = []*deployv1.DesiredState{{Service: "app", Destination: "staging", Role: "web", Host: "w1"}}
			return r
		}(), scheduler.ErrInvalidRequest, "not of service app"},
		{"no command", func() *deployv1.Request {
			r := lifecycleRequest(&deployv1.Phase{Steps: []*deployv1.Step{step("w1", stopOp())}})
			r.Command = ""
			return r
		}(), scheduler.ErrInvalidRequest, "command is empty"},
		{"unknown host", lifecycleRequest(&deployv1.Phase{Steps: []*deployv1.Step{step("w9", stopOp())}}), scheduler.ErrUnplaceable, "no agent is enrolled for w9"},
		{"disconnected host", lifecycleRequest(&deployv1.Phase{Steps: []*deployv1.Step{step("w2", stopOp())}}), scheduler.ErrUnplaceable, "the agent of w2 is not connected"},
	}
	fleet := connected("w1")
	fleet["w2"] = scheduler.AgentDisconnected
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := scheduler.Plan(tt.req, fleet)
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Plan = %v, want %v containing %q", err, tt.err, tt.want)
			}
		})
	}
}
