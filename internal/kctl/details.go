package kctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
)

// newDetailsCmd is `kamal details`: proxy, app and every accessory's
// containers on every host, and the desired state recorded for the app.
func newDetailsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "details", Short: "Show details about all containers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			errs := []error{g.proxyDetails(cmd, p), g.appDetails(cmd, p)}
			if len(p.cfg.Accessories) > 0 {
				errs = append(errs, g.accessoryDetails(cmd, p, "all"))
			}
			errs = append(errs, g.desiredDetails(cmd, p))
			return errors.Join(errs...)
		},
	}
}

// desiredDetails prints the desired state recorded for the selected roles
// and hosts where it is not running (`app stop`, `app maintenance`, …).
func (g *globals) desiredDetails(cmd *cobra.Command, p *project) error {
	rhs, err := roleHosts(p)
	if err != nil {
		return err
	}
	var resp *opsv1.DesiredResponse
	err = g.callConn(cmd.Context(), func(ctx context.Context, c opsv1.LifecycleServiceClient) (err error) {
		resp, err = c.Desired(ctx, &opsv1.DesiredRequest{Service: p.cfg.Service, Destination: p.cfg.Destination})
		return err
	})
	if err != nil {
		return fmt.Errorf("desired state: %w", err)
	}
	selected := map[roleHost]bool{}
	for _, rh := range rhs {
		selected[rh] = true
	}
	var states []*deployv1.DesiredState
	for _, d := range resp.GetStates() {
		if selected[roleHost{d.GetRole(), d.GetHost()}] {
			states = append(states, d)
		}
	}
	printDesired(cmd.OutOrStdout(), states)
	return nil
}

// printDesired prints "Desired state:" and a line per state that is not
// running: role, host, state (with the maintenance message), and the
// command, operator and time that set it; nothing when all are running.
func printDesired(w io.Writer, states []*deployv1.DesiredState) {
	var lines []string
	for _, d := range states {
		if d.GetState() == deployv1.DesiredState_STATE_RUNNING || d.GetState() == deployv1.DesiredState_STATE_UNSPECIFIED {
			continue
		}
		state := strings.ToLower(strings.TrimPrefix(d.GetState().String(), "STATE_"))
		if d.GetMessage() != "" {
			state += fmt.Sprintf(" %q", d.GetMessage())
		}
		when := time.UnixMilli(d.GetUpdatedUnixMillis()).UTC().Format(time.RFC3339)
		lines = append(lines, fmt.Sprintf("  %s on %s: %s (%s by %s at %s)", d.GetRole(), d.GetHost(), state, d.GetCommand(), d.GetOperator(), when))
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "Desired state:\n%s\n\n", strings.Join(lines, "\n"))
	}
}
