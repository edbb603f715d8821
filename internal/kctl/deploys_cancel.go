package kctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

func newDeploysCancelCmd(g *globals) *cobra.Command {
	return newDeploysIDCmd("cancel", "Stop a deploy between steps and release its lock", func(cmd *cobra.Command, id string) error {
		return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
			resp, err := c.Cancel(ctx, &deployv1.CancelRequest{Id: id})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deploy %s: cancel requested (state %s)\n", id, progress.StateName(resp.GetDeploy().GetState()))
			return nil
		})
	})
}
