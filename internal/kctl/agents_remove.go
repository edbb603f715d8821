package kctl

import (
	"context"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newAgentsRemoveCmd(g *globals) *cobra.Command {
	return newRemoveCmd(g, "Remove an agent and revoke its certificate: it can never connect again", "agent",
		func(ctx context.Context, cc controllerv1.ControllerServiceClient, name string) error {
			_, err := cc.RemoveAgent(ctx, &controllerv1.RemoveAgentRequest{Name: name})
			return err
		})
}
