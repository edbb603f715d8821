package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

// newProxyBootCmd is `kamal proxy boot`: the `kamal` network on every host,
// then kamal-proxy started (or run) on the proxy hosts.
func newProxyBootCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "boot", Short: "Boot proxy on servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "proxy boot", call: proxyAction}
			pl.phase("network")
			hosts := proxyHosts(p)
			for _, h := range hosts {
				pl.add(h, "", "ensure network", &agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: scheduler.DefaultNetwork}}})
			}
			pl.phase("proxy boot")
			if err := addProxyBoot(p, pl, hosts, "Booted proxy", false); err != nil {
				return err
			}
			return g.runPlan(cmd, p, pl)
		},
	}
}
