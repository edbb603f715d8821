package kctl

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

func newDeploysShowCmd(g *globals) *cobra.Command {
	var o output
	cmd := &cobra.Command{
		Use: "show ID", Short: "Show a deploy and its steps", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.Get(ctx, &deployv1.GetRequest{Id: args[0]})
				if err != nil {
					return err
				}
				if o == "json" {
					return printJSON(cmd.OutOrStdout(), deployShowJSON(resp.GetDeploy(), resp.GetSteps()))
				}
				prog := &progress.Printer{W: cmd.OutOrStdout()}
				prog.Update(resp.GetDeploy(), resp.GetSteps())
				if progress.Ended(resp.GetDeploy().GetState()) {
					prog.Summary(resp.GetDeploy(), resp.GetSteps())
				}
				return nil
			})
		},
	}
	addOutput(cmd, &o)
	return cmd
}

// deployShowJSON is `deploys show -o json`: the deploy as `deploys -o json`
// lists it, plus its finish time and every step of its plan in order, with
// the step's state ("pending" until it starts) and times (RFC 3339 with
// milliseconds, empty until set).
func deployShowJSON(d *deployv1.Record, records []*deployv1.StepRecord) map[string]any {
	out := deployJSON(d)
	out["finished"] = millisJSON(d.GetFinishedUnixMillis())
	byID := map[string]*deployv1.StepRecord{}
	for _, s := range records {
		byID[s.GetStepId()] = s
	}
	steps := []map[string]any{}
	for _, ph := range d.GetPlan().GetPhases() {
		for _, st := range ph.GetSteps() {
			sr := byID[st.GetId()]
			state := "pending"
			if sr != nil {
				state = progress.StateName(sr.GetState())
			}
			steps = append(steps, map[string]any{
				"id": st.GetId(), "phase": ph.GetName(), "host": st.GetHost(), "role": st.GetRole(), "action": st.GetAction(),
				"state": state, "error": sr.GetError(),
				"started": millisJSON(sr.GetStartedUnixMillis()), "finished": millisJSON(sr.GetFinishedUnixMillis()),
			})
		}
	}
	out["steps"] = steps
	return out
}

// millisJSON is a Unix time in milliseconds as JSON shows it: RFC 3339 in
// UTC with milliseconds, or "" for zero.
func millisJSON(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
