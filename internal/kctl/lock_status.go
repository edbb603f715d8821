package kctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/locks"
)

func newLockStatusCmd(g *globals) *cobra.Command {
	return newLockSubCmd(g, "status", "Show who holds the deploy lock",
		func(ctx context.Context, cmd *cobra.Command, c deployv1.DeployServiceClient, svc, dest string) error {
			resp, err := c.LockStatus(ctx, &deployv1.LockStatusRequest{Service: svc, Destination: dest})
			if err != nil {
				return err
			}
			if resp.GetLock() == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "There is no deploy lock")
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), locks.Describe(resp.GetLock()))
			return nil
		})
}
