package scheduler

import (
	"fmt"
	"strings"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// lifecyclePlan is the plan of a lifecycle command (`app stop`, `proxy
// reboot`, …): the phases kctl planned from deploy.yml, checked and given
// stable step IDs (`<phase index>/<host>/<n>`) where they have none.
func lifecyclePlan(req *deployv1.Request, fleet Fleet) (*deployv1.Plan, error) {
	if err := validateLifecycle(req); err != nil {
		return nil, err
	}
	if err := checkFleet(req, fleet); err != nil {
		return nil, err
	}
	plan := &deployv1.Plan{}
	for i, ph := range req.GetLifecycle().GetPhases() {
		out := &deployv1.Phase{Name: ph.GetName(), WaitSeconds: ph.GetWaitSeconds(), GroupHosts: ph.GetGroupHosts()}
		n := map[string]int{}
		for _, s := range ph.GetSteps() {
			id := s.GetId()
			if id == "" {
				n[s.GetHost()]++
				id = fmt.Sprintf("%d/%s/%d", i, s.GetHost(), n[s.GetHost()])
			}
			out.Steps = append(out.Steps, &deployv1.Step{Id: id, Host: s.GetHost(), Role: s.GetRole(), Action: s.GetAction(), Op: s.GetOp(), After: s.GetAfter()})
		}
		if len(out.Steps) > 0 {
			plan.Phases = append(plan.Phases, out)
		}
	}
	return plan, nil
}

func validateLifecycle(req *deployv1.Request) error {
	var problems []string
	if req.GetService() == "" {
		problems = append(problems, "service is empty")
	}
	if req.GetCommand() == "" {
		problems = append(problems, "command is empty")
	}
	seen := map[string]bool{}
	for i, ph := range req.GetLifecycle().GetPhases() {
		for _, s := range ph.GetSteps() {
			switch {
			case s.GetHost() == "":
				problems = append(problems, fmt.Sprintf("phase %d: a step has no host", i))
			case s.GetOp().GetOp() == nil:
				problems = append(problems, fmt.Sprintf("phase %d: step %q on %s has no operation", i, s.GetAction(), s.GetHost()))
			case s.GetId() != "" && seen[s.GetId()]:
				problems = append(problems, fmt.Sprintf("step id %q is used twice", s.GetId()))
			}
			seen[s.GetId()] = true
		}
	}
	for _, d := range req.GetLifecycle().GetDesired() {
		if d.GetHost() == "" || d.GetRole() == "" || d.GetService() != req.GetService() || d.GetDestination() != req.GetDestination() {
			problems = append(problems, fmt.Sprintf("desired state %s/%s is not of service %s", d.GetRole(), d.GetHost(), req.GetService()))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidRequest, strings.Join(problems, "; "))
	}
	return nil
}

// lifecycleHosts are the hosts a lifecycle command's steps run on.
func lifecycleHosts(req *deployv1.Request) []string {
	var hosts []string
	for _, ph := range req.GetLifecycle().GetPhases() {
		for _, s := range ph.GetSteps() {
			hosts = append(hosts, s.GetHost())
		}
	}
	return hosts
}
