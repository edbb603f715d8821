package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// newProxyStartCmd is `kamal proxy start`.
func newProxyStartCmd(g *globals) *cobra.Command {
	return newProxyPlanCmd(g, "start", "Start existing proxy container on servers", func(_ *project, pl *lifecyclePlan, hosts []string) {
		addProxyControl(pl, hosts, "Started proxy", agentv1.ProxyControl_ACTION_START)
	})
}
