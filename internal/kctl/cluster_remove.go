package kctl

import (
	"context"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newClusterRemoveCmd(g *globals) *cobra.Command {
	return newRemoveCmd(g, "Remove a controller from the cluster and revoke its certificate", "controller",
		func(ctx context.Context, cc controllerv1.ControllerServiceClient, name string) error {
			_, err := cc.RemoveController(ctx, &controllerv1.RemoveControllerRequest{Name: name})
			return err
		})
}
