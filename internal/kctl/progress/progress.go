// Package progress renders a deploy as kctl shows it: one line per step as
// it starts and ends, so the output reads the same on a terminal and in a CI
// log, then a summary per host. It reads the wire types only.
package progress

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// Printer prints a deploy's progress as it changes: one line per step when
// it starts and when it ends, and a summary at the end.
type Printer struct {
	W io.Writer
	// seen is the last state printed per step.
	seen map[string]deployv1.State
	// phase is the last phase announced.
	phase int
}

// Update prints what changed since the last update.
func (p *Printer) Update(rec *deployv1.Record, steps []*deployv1.StepRecord) {
	if p.seen == nil {
		p.seen = map[string]deployv1.State{}
		p.phase = -1
		fmt.Fprintf(p.W, "Deploy %s: %s %s version %s by %s\n", rec.GetId(), rec.GetRequest().GetCommand(),
			serviceName(rec.GetRequest()), rec.GetRequest().GetVersion(), rec.GetOperator())
	}
	byID := map[string]*deployv1.StepRecord{}
	for _, s := range steps {
		byID[s.GetStepId()] = s
	}
	for i, ph := range rec.GetPlan().GetPhases() {
		for _, st := range ph.GetSteps() {
			sr, ok := byID[st.GetId()]
			if !ok || p.seen[st.GetId()] == sr.GetState() {
				continue
			}
			if i > p.phase {
				p.phase = i
				fmt.Fprintf(p.W, "== %s\n", ph.GetName())
			}
			p.seen[st.GetId()] = sr.GetState()
			line := fmt.Sprintf("  %-20s %-40s %s", st.GetHost(), st.GetAction(), StateName(sr.GetState()))
			if sr.GetError() != "" {
				line += ": " + sr.GetError()
			}
			if sr.GetState() == deployv1.State_STATE_SUCCEEDED && sr.GetFinishedUnixMillis() > 0 {
				line += fmt.Sprintf(" (%s)", time.Duration(sr.GetFinishedUnixMillis()-sr.GetStartedUnixMillis())*time.Millisecond)
			}
			fmt.Fprintln(p.W, line)
			if sr.GetDetail() != "" && sr.GetState() == deployv1.State_STATE_FAILED {
				for _, l := range strings.Split(strings.TrimRight(sr.GetDetail(), "\n"), "\n") {
					fmt.Fprintln(p.W, "    | "+l)
				}
			}
		}
	}
}

// Summary prints the outcome per host and overall.
func (p *Printer) Summary(rec *deployv1.Record, steps []*deployv1.StepRecord) {
	hosts := map[string]string{}
	for _, ph := range rec.GetPlan().GetPhases() {
		for _, st := range ph.GetSteps() {
			if _, ok := hosts[st.GetHost()]; !ok {
				hosts[st.GetHost()] = "converged"
			}
		}
	}
	byID := map[string]*deployv1.StepRecord{}
	for _, s := range steps {
		byID[s.GetStepId()] = s
	}
	for _, ph := range rec.GetPlan().GetPhases() {
		for _, st := range ph.GetSteps() {
			sr := byID[st.GetId()]
			switch {
			case sr == nil:
				if hosts[st.GetHost()] == "converged" {
					hosts[st.GetHost()] = "not reached"
				}
			case sr.GetState() == deployv1.State_STATE_FAILED:
				hosts[st.GetHost()] = "failed: " + sr.GetError()
			case sr.GetState() == deployv1.State_STATE_SKIPPED && hosts[st.GetHost()] == "converged":
				hosts[st.GetHost()] = "skipped"
			}
		}
	}
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	fmt.Fprintln(p.W, "Summary:")
	for _, h := range names {
		fmt.Fprintf(p.W, "  %-20s %s\n", h, hosts[h])
	}
	took := time.Duration(rec.GetFinishedUnixMillis()-rec.GetCreatedUnixMillis()) * time.Millisecond
	switch rec.GetState() {
	case deployv1.State_STATE_SUCCEEDED:
		fmt.Fprintf(p.W, "Finished all in %.1f seconds\n", took.Seconds())
	default:
		fmt.Fprintf(p.W, "Deploy %s %s: %s\n", rec.GetId(), StateName(rec.GetState()), rec.GetError())
	}
}

// StateName is a state as kctl prints it: "running", "succeeded"…
func StateName(s deployv1.State) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STATE_"))
}

func serviceName(req *deployv1.Request) string {
	if req.GetDestination() == "" {
		return req.GetService()
	}
	return req.GetService() + " (" + req.GetDestination() + ")"
}

// Ended reports whether a deploy in state s has ended: succeeded, failed or
// cancelled.
func Ended(s deployv1.State) bool {
	switch s {
	case deployv1.State_STATE_SUCCEEDED, deployv1.State_STATE_FAILED, deployv1.State_STATE_CANCELLED:
		return true
	}
	return false
}
