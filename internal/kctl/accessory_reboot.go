package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig"
)

// newAccessoryRebootCmd is `kamal accessory reboot NAME|all`.
func newAccessoryRebootCmd(g *globals) *cobra.Command {
	return newAccessoryPlanCmd(g, "reboot", "Reboot existing accessory on host (stop container, remove container, start new container; use NAME=all to boot all accessories)", func(p *project, pl *lifecyclePlan, as []*kamalconfig.Accessory) error {
		pl.phase("accessory remove container")
		addAccessoryControl(p, pl, as, "Removed accessory container", agentv1.AccessoryControl_ACTION_REMOVE_CONTAINER)
		return addAccessoryBoot(p, pl, as)
	})
}
