package kctl

import (
	"context"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

func newDeploysShowCmd(g *globals) *cobra.Command {
	return newDeploysIDCmd("show", "Show a deploy and its steps", func(cmd *cobra.Command, id string) error {
		resp, err := askDeploy(cmd.Context(), g, func(ctx context.Context, c deployv1.DeployServiceClient) (*deployv1.GetResponse, error) {
			return c.Get(ctx, &deployv1.GetRequest{Id: id})
		})
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
}
