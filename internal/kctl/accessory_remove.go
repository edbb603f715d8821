package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// newAccessoryRemoveCmd is `kamal accessory remove [-y] NAME|all`: stop,
// remove the container, its image and its data directory.
func newAccessoryRemoveCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use: "remove [NAME]", Short: "Remove accessory container, image and data directory from host (use NAME=all to remove all accessories)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !confirm(cmd, yes, "This will remove all containers, images and data directories for "+args[0]+". Are you sure?") {
				return nil
			}
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			as, err := accessories(p, args[0])
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "accessory remove", call: accessoryAction}
			addAccessoryControl(p, pl, as, "Removed accessory", agentv1.AccessoryControl_ACTION_REMOVE)
			return g.runPlan(cmd, p, pl)
		},
	}
	cmd.Flags().BoolVarP(&yes, "confirmed", "y", false, "Proceed without confirmation question")
	return cmd
}
