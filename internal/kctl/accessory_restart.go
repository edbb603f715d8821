package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig"
)

// newAccessoryRestartCmd is `kamal accessory restart NAME|all`.
func newAccessoryRestartCmd(g *globals) *cobra.Command {
	return newAccessoryPlanCmd(g, "restart", "Restart existing accessory container on host", func(p *project, pl *lifecyclePlan, as []*kamalconfig.Accessory) error {
		addAccessoryControl(p, pl, as, "Restarted accessory", agentv1.AccessoryControl_ACTION_RESTART)
		return nil
	})
}
