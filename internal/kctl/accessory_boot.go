package kctl

import (
	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/kamalconfig"
)

// newAccessoryBootCmd is `kamal accessory boot NAME|all`.
func newAccessoryBootCmd(g *globals) *cobra.Command {
	return newAccessoryPlanCmd(g, "boot", "Boot new accessory service on host (use NAME=all to boot all accessories)", func(p *project, pl *lifecyclePlan, as []*kamalconfig.Accessory) error {
		return addAccessoryBoot(p, pl, as)
	})
}
