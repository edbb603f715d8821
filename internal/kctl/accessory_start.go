package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig"
)

// newAccessoryStartCmd is `kamal accessory start NAME|all`.
func newAccessoryStartCmd(g *globals) *cobra.Command {
	return newAccessoryPlanCmd(g, "start", "Start existing accessory container on host", func(p *project, pl *lifecyclePlan, as []*kamalconfig.Accessory) error {
		addAccessoryControl(p, pl, as, "Started accessory", agentv1.AccessoryControl_ACTION_START)
		return nil
	})
}
