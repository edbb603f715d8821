package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// newAppLiveCmd is `kamal app live`: kamal-proxy serves the role again.
func newAppLiveCmd(g *globals) *cobra.Command {
	return newAppPlanCmd(g, "live", "Set the app to live mode", func(p *project, pl *lifecyclePlan, rh roleHost) {
		if !runsProxy(p, rh.role) {
			return
		}
		pl.add(rh.host, rh.role, "Live mode", opProxyControl(proxyControl(p, rh.role, agentv1.ProxyControl_ACTION_RESUME)))
		pl.want(p, rh.role, rh.host, deployv1.DesiredState_STATE_RUNNING, "")
	})
}
