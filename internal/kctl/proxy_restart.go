package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// newProxyRestartCmd is `kamal proxy restart`: stop, then start.
func newProxyRestartCmd(g *globals) *cobra.Command {
	return newProxyPlanCmd(g, "restart", "Restart existing proxy container on servers", func(_ *project, pl *lifecyclePlan, hosts []string) {
		pl.phase("proxy stop")
		addProxyControl(pl, hosts, "Stopped proxy", agentv1.ProxyControl_ACTION_STOP_PROXY)
		pl.phase("proxy start")
		addProxyControl(pl, hosts, "Started proxy", agentv1.ProxyControl_ACTION_START)
	})
}
