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
	cmd := &cobra.Command{
		Use: "start", Short: "Start existing app container on servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			rhs, err := roleHosts(p)
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "app start", call: appAction}
			for _, rh := range rhs {
				a := appControl(p, rh.role, agentv1.AppControl_ACTION_START)
				a.Version, a.Proxy = version, p.cfg.ProxyDeploy(rh.role)
				pl.add(rh.host, rh.role, "Started app", opAppControl(a))
				pl.want(p, rh.role, rh.host, deployv1.DesiredState_STATE_RUNNING, "")
			}
			return g.runPlan(cmd, p, pl)
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "the version to start (default: the newest container)")
	return cmd
}
