package kctl

import (
	"context"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

func newDeploysShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show ID", Short: "Show a deploy and its steps", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.Get(ctx, &deployv1.GetRequest{Id: args[0]})
				if err != nil {
					return err
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
}
