package kctl

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newPruneCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "prune", Short: "Prune old containers and images on every host"}
	cmd.AddCommand(newPruneAllCmd(g), newPruneContainersCmd(g), newPruneImagesCmd(g))
	return cmd
}

// newPruneKindCmd makes prune all, containers and images; retain adds
// --retain.
func newPruneKindCmd(g *globals, kind string, containers, images, retain bool) *cobra.Command {
	var pf targetFlags
	var keep int
	c := &cobra.Command{
		Use: kind, Args: cobra.NoArgs, Short: "Prune " + kind,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProject(cmd.Context(), cmd, pf, false)
			if err != nil {
				return describeErr(err)
			}
			if keep > 0 {
				p.cfg.RetainContainers = keep
			}
			return g.runPrune(cmd, p, containers, images)
		},
	}
	addTargetFlags(c, &pf)
	if retain {
		c.Flags().IntVar(&keep, "retain", 0, "containers to keep (default retain_containers)")
	}
	return c
}

// runPrune sends a Prune to every selected app host through the controller.
func (g *globals) runPrune(cmd *cobra.Command, p *project, containers, images bool) error {
	if p.cfg.RetainContainers < 1 {
		return errors.New("retain must be at least 1")
	}
	return g.onHosts(cmd, p.allHosts(), "pruned", func(ctx context.Context, c controllerv1.ControllerServiceClient, h string) (*controllerv1.AgentOperationResponse, error) {
		return c.Prune(ctx, &controllerv1.PruneRequest{Agent: h, Destination: p.cfg.Destination, Prune: pruneOp(p, containers, images)})
	})
}

// pruneOp is Kamal's prune for the project's service on one host.
func pruneOp(p *project, containers, images bool) *agentv1.Prune {
	return &agentv1.Prune{
		Service: p.cfg.Service, Retain: uint32(p.cfg.RetainContainers), Containers: containers, Images: images,
		KeepTags: []string{p.cfg.LatestTag()}, Repository: p.cfg.Repository(),
	}
}
