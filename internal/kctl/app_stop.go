package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// newAppStopCmd is `kamal app stop`: roles behind the proxy are removed
// from kamal-proxy first, then their containers stop.
func newAppStopCmd(g *globals) *cobra.Command {
	return newAppPlanCmd(g, "stop", "Stop app container on servers", func(p *project, pl *lifecyclePlan, rh roleHost) {
		pl.add(rh.host, rh.role, "Stopped app", opAppControl(appControl(p, rh.role, agentv1.AppControl_ACTION_STOP)))
		pl.want(p, rh.role, rh.host, deployv1.DesiredState_STATE_STOPPED, "")
	})
}
