package kctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/locks"
)

func newLockCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "lock", Short: "Manage the deploy lock of the service"}
	cmd.AddCommand(newLockStatusCmd(g), newLockAcquireCmd(g), newLockReleaseCmd(g))
	return cmd
}

// newLockSubCmd makes a lock subcommand: run gets the project's service and
// destination, which key the lock.
func newLockSubCmd(g *globals, use, short string, run func(ctx context.Context, cmd *cobra.Command, c deployv1.DeployServiceClient, svc, dest string) error) *cobra.Command {
	return newProjectCmd(use, short, false, func(cmd *cobra.Command, p *project) error {
		return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
			return run(ctx, cmd, c, p.cfg.Service, p.cfg.Destination)
		})
	})
}

// printLockChange says a lock was acquired or released.
func printLockChange(cmd *cobra.Command, what, svc, dest string) {
	fmt.Fprintf(cmd.OutOrStdout(), "%s the deploy lock of %s\n", what, locks.Key(svc, dest))
}
