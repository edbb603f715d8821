package kctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// onHosts runs one typed operation per host and reports each outcome.
func (g *globals) onHosts(cmd *cobra.Command, hosts []string, done string, op func(ctx context.Context, c controllerv1.ControllerServiceClient, host string) (*controllerv1.AgentOperationResponse, error)) error {
	var failed []string
	for _, h := range hosts {
		res, err := g.agentOp(cmd.Context(), h, func(ctx context.Context, c controllerv1.ControllerServiceClient) (*controllerv1.AgentOperationResponse, error) {
			return op(ctx, c, h)
		})
		switch {
		case err != nil:
			failed = append(failed, h+": "+err.Error())
		case !res.GetOk():
			failed = append(failed, h+": "+res.GetError())
		default:
			fmt.Fprintf(cmd.OutOrStdout(), "  %-20s %s\n", h, done)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed on %d of %d hosts:\n  %s", len(failed), len(hosts), strings.Join(failed, "\n  "))
	}
	return nil
}
