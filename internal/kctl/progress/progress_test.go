package progress_test

import (
	"bytes"
	"strings"
	"testing"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

func TestPrinter_OneLinePerChangeThenASummary(t *testing.T) {
	rec := &deployv1.Record{Id: "d1", Operator: "alice", State: deployv1.State_STATE_RUNNING,
		Request: &deployv1.Request{Command: "deploy", Service: "app", Destination: "prod", Version: "v2"},
		Plan: &deployv1.Plan{Phases: []*deployv1.Phase{{Name: "boot web", Steps: []*deployv1.Step{
			{Id: "s1", Host: "web-1", Action: "boot app"}, {Id: "s2", Host: "web-2", Action: "boot app"}}}}}}
	var out bytes.Buffer
	p := &progress.Printer{W: &out}
	running := []*deployv1.StepRecord{{StepId: "s1", State: deployv1.State_STATE_RUNNING}}
	p.Update(rec, running)
	p.Update(rec, running) // nothing changed: nothing printed
	rec.State, rec.Error = deployv1.State_STATE_FAILED, "web-2 failed"
	steps := []*deployv1.StepRecord{{StepId: "s1", State: deployv1.State_STATE_SUCCEEDED},
		{StepId: "s2", State: deployv1.State_STATE_FAILED, Error: "proxy: target failed to become healthy within configured timeout (10s)", Detail: "last log line"}}
	p.Update(rec, steps)
	p.Summary(rec, steps)
	got := out.String()
	for _, want := range []string{
		"Deploy d1: deploy app (prod) version v2 by alice\n== boot web\n",
		"web-1                boot app                                 running\n",
		"web-2                boot app                                 failed: proxy: target failed",
		"    | last log line\n",
		"Summary:\n  web-1                converged\n  web-2                failed: proxy:",
		"Deploy d1 failed: web-2 failed\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "running"); n != 1 {
		t.Errorf("running printed %d times, want once:\n%s", n, got)
	}
	if !progress.Ended(deployv1.State_STATE_CANCELLED) || progress.Ended(deployv1.State_STATE_RUNNING) {
		t.Error("Ended(cancelled) = false or Ended(running) = true")
	}
}
