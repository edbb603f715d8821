package kctl

import (
	"context"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

func newLockAcquireCmd(g *globals) *cobra.Command {
	var message string
	cmd := newLockSubCmd(g, "acquire -m MESSAGE", "Take the deploy lock by hand",
		func(ctx context.Context, cmd *cobra.Command, c deployv1.DeployServiceClient, svc, dest string) error {
			if _, err := c.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: svc, Destination: dest, Message: message}); err != nil {
				return err
			}
			printLockChange(cmd, "Acquired", svc, dest)
			return nil
		})
	cmd.Flags().StringVarP(&message, "message", "m", "", "why the lock is taken (required)")
	return cmd
}
