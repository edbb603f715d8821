package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

func newProxyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "proxy", Short: "Manage kamal-proxy"}
	cmd.AddCommand(newProxyBootCmd(g), newProxyRebootCmd(g), newProxyStartCmd(g), newProxyStopCmd(g),
		newProxyRestartCmd(g), newProxyDetailsCmd(g), newProxyRemoveCmd(g), newProxyBootConfigCmd(g))
	return cmd
}

// newProxyPlanCmd makes a proxy command planned per proxy host.
func newProxyPlanCmd(g *globals, use, short string, plan func(p *project, pl *lifecyclePlan, hosts []string)) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "proxy " + use, call: proxyAction}
			plan(p, pl, proxyHosts(p))
			return g.runPlan(cmd, p, pl)
		},
	}
}

// addProxyControl adds one proxy container action per host.
func addProxyControl(pl *lifecyclePlan, hosts []string, what string, action agentv1.ProxyControl_Action) {
	for _, h := range hosts {
		pl.add(h, "", what, opProxyControl(&agentv1.ProxyControl{Action: action}))
	}
}

// addProxyBoot adds kamal-proxy's boot (reboot: replace it) on hosts.
func addProxyBoot(p *project, pl *lifecyclePlan, hosts []string, what string, reboot bool) error {
	auth, err := p.cfg.RegistryAuth()
	if err != nil {
		return err
	}
	for _, h := range hosts {
		pl.add(h, "", what, &agentv1.Operation{Op: &agentv1.Operation_BootProxy{BootProxy: &agentv1.BootProxy{
			Boot: p.cfg.ProxyBoot(h), Reboot: reboot, Auth: auth,
		}}})
	}
	return nil
}
