package kctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

func newDeploysCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "cancel ID", Short: "Stop a deploy between steps and release its lock", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.Cancel(ctx, &deployv1.CancelRequest{Id: args[0]})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deploy %s: cancel requested (state %s)\n", args[0], progress.StateName(resp.GetDeploy().GetState()))
				return nil
			})
		},
	}
}
