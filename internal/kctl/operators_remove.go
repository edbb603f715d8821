package kctl

import (
	"context"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newOperatorsRemoveCmd(g *globals) *cobra.Command {
	return newRemoveCmd(g, "Remove an operator and revoke their certificates", "operator",
		func(ctx context.Context, cc controllerv1.ControllerServiceClient, name string) error {
			_, err := cc.RemoveOperator(ctx, &controllerv1.RemoveOperatorRequest{Name: name})
			return err
		})
}
