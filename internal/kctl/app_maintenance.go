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
	cmd := &cobra.Command{
		Use: "maintenance", Short: "Set app to maintenance mode", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			rhs, err := roleHosts(p)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("drain-timeout") {
				drain = p.cfg.DrainTimeout
			}
			pl := &lifecyclePlan{command: "app maintenance", call: appAction}
			for _, rh := range rhs {
				if !runsProxy(p, rh.role) {
					continue
				}
				pc := proxyControl(p, rh.role, agentv1.ProxyControl_ACTION_STOP)
				pc.DrainTimeout, pc.Message = uint32(drain), message
				pl.add(rh.host, rh.role, "Maintenance mode", opProxyControl(pc))
				pl.want(p, rh.role, rh.host, deployv1.DesiredState_STATE_MAINTENANCE, message)
			}
			return g.runPlan(cmd, p, pl)
		},
	}
	cmd.Flags().IntVar(&drain, "drain-timeout", 0, "how long to allow in-flight requests to complete (default: drain_timeout from config)")
	cmd.Flags().StringVar(&message, "message", "", "message to display to clients while stopped")
	return cmd
}
