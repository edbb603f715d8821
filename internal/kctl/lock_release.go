package kctl

import (
	"context"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

func newLockReleaseCmd(g *globals) *cobra.Command {
	return newLockSubCmd(g, "release", "Release the deploy lock",
		func(ctx context.Context, cmd *cobra.Command, c deployv1.DeployServiceClient, svc, dest string) error {
			if _, err := c.ReleaseLock(ctx, &deployv1.ReleaseLockRequest{Service: svc, Destination: dest}); err != nil {
				return err
			}
			printLockChange(cmd, "Released", svc, dest)
			return nil
		})
}
