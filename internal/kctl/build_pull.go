package kctl

import (
	"context"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newBuildPullCmd(g *globals) *cobra.Command {
	return newBuildStepCmd(g, "pull", "Pull the image on every selected host through its agent", false, true)
}

// pullOnHosts has every selected app host pull the image, as `kamal build
// pull` does, through the controllers.
func (g *globals) pullOnHosts(cmd *cobra.Command, p *project) error {
	auth, err := p.cfg.RegistryAuth()
	if err != nil {
		return err
	}
	pull := &agentv1.PullImage{Image: p.cfg.Image(), Auth: auth, Service: p.cfg.Service}
	return g.onHosts(cmd, p.allHosts(), "pulled "+p.cfg.Image(), func(ctx context.Context, c controllerv1.ControllerServiceClient, h string) (*controllerv1.AgentOperationResponse, error) {
		return c.PullImage(ctx, &controllerv1.PullImageRequest{Agent: h, Destination: p.cfg.Destination, Pull: pull})
	})
}
