package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig"
)

// newAccessoryStopCmd is `kamal accessory stop NAME|all`.
func newAccessoryStopCmd(g *globals) *cobra.Command {
	return newAccessoryPlanCmd(g, "stop", "Stop existing accessory container on host", func(p *project, pl *lifecyclePlan, as []*kamalconfig.Accessory) error {
		addAccessoryControl(p, pl, as, "Stopped accessory", agentv1.AccessoryControl_ACTION_STOP)
		return nil
	})
}
