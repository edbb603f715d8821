package kctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// newRemoveCmd makes the `remove NAME` of cluster, agents and operators:
// rm removes what NAME names, kind says what it was.
func newRemoveCmd(g *globals, short, kind string, rm func(context.Context, controllerv1.ControllerServiceClient, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				return rm(ctx, cc, args[0])
			})
			if err == nil {
				fmt.Fprintf(g.stdout, "removed %s %s\n", kind, args[0])
			}
			return err
		},
	}
}
