package kctl

import (
	"context"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

func newDeploysShowCmd(g *globals) *cobra.Command {
	return newDeploysIDCmd("show", "Show a deploy and its steps", func(cmd *cobra.Command, id string) error {
		return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
			resp, err := c.Get(ctx, &deployv1.GetRequest{Id: id})
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
	})
}
