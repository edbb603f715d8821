package kctl

import (
	"context"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				_, err := cc.RevokeToken(ctx, &controllerv1.RevokeTokenRequest{Id: args[0]})
				return err
			})
		},
	}
}
