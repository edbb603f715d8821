package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// newAppStartCmd is `kamal app start`: the role's container starts again
// (of --version, else the newest one) and roles behind the proxy are
// deployed to kamal-proxy again.
func newAppStartCmd(g *globals) *cobra.Command {
	var version string
	cmd := newAppPlanCmd(g, "start", "Start existing app container on servers", func(p *project, pl *lifecyclePlan, rh roleHost) {
		a := appControl(p, rh.role, agentv1.AppControl_ACTION_START)
		a.Version, a.Proxy = version, p.cfg.ProxyDeploy(rh.role)
		pl.add(rh.host, rh.role, "Started app", opAppControl(a))
		pl.want(p, rh.role, rh.host, deployv1.DesiredState_STATE_RUNNING, "")
	})
	cmd.Flags().StringVar(&version, "version", "", "the version to start (default: the newest container)")
	return cmd
}
