package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// newAppMaintenanceCmd is `kamal app maintenance`: kamal-proxy answers the
// role's requests with 503 (and --message) until `app live`.
func newAppMaintenanceCmd(g *globals) *cobra.Command {
	var drain int
	var message string
	var cmd *cobra.Command
	cmd = newAppPlanCmd(g, "maintenance", "Set app to maintenance mode", func(p *project, pl *lifecyclePlan, rh roleHost) {
		if !runsProxy(p, rh.role) {
			return
		}
		pc := proxyControl(p, rh.role, agentv1.ProxyControl_ACTION_STOP)
		pc.DrainTimeout, pc.Message = uint32(drain), message
		if !cmd.Flags().Changed("drain-timeout") {
			pc.DrainTimeout = uint32(p.cfg.DrainTimeout)
		}
		pl.add(rh.host, rh.role, "Maintenance mode", opProxyControl(pc))
		pl.want(p, rh.role, rh.host, deployv1.DesiredState_STATE_MAINTENANCE, message)
	})
	cmd.Flags().IntVar(&drain, "drain-timeout", 0, "how long to allow in-flight requests to complete (default: drain_timeout from config)")
	cmd.Flags().StringVar(&message, "message", "", "message to display to clients while stopped")
	return cmd
}
