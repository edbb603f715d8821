package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// newRemoveServiceCmd is `kamal remove [-y]`: under one lock, the app
// (containers and images), the accessories, then kamal-proxy where no
// other app runs. There is no registry login on the servers to undo.
func newRemoveServiceCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use: "remove", Short: "Remove proxy, app, accessories, and registry session from servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !confirm(cmd, yes, "This will remove all containers and images. Are you sure?") {
				return nil
			}
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "remove", call: removeAction}
			if err := planAppRemove(p, pl); err != nil {
				return err
			}
			if len(p.cfg.Accessories) > 0 {
				pl.phase("accessory remove")
				addAccessoryControl(p, pl, p.cfg.Accessories, "Removed accessory", agentv1.AccessoryControl_ACTION_REMOVE)
			}
			if _, err := g.planProxyRemove(cmd, p, pl, false, ""); err != nil {
				return err
			}
			return g.runPlan(cmd, p, pl)
		},
	}
	cmd.Flags().BoolVarP(&yes, "confirmed", "y", false, "Proceed without confirmation question")
	return cmd
}
