package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// newProxyStopCmd is `kamal proxy stop`.
func newProxyStopCmd(g *globals) *cobra.Command {
	return newProxyPlanCmd(g, "stop", "Stop existing proxy container on servers", func(_ *project, pl *lifecyclePlan, hosts []string) {
		addProxyControl(pl, hosts, "Stopped proxy", agentv1.ProxyControl_ACTION_STOP_PROXY)
	})
}
