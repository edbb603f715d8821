package kctl

import (
	"fmt"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// newProxyRemoveCmd is `kamal proxy remove [--force]`: stop and remove
// kamal-proxy, unless other apps run on a proxy host (then it says so and
// removes nothing, as Kamal) or --force.
func newProxyRemoveCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "remove", Short: "Remove proxy container and image from servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "proxy remove", call: proxyAction}
			ok, err := g.planProxyRemove(cmd, p, pl, force, "")
			if err != nil || !ok {
				return err
			}
			return g.runPlan(cmd, p, pl)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "Force removing proxy when apps are still installed")
	return cmd
}

// planProxyRemove adds the proxy's removal on every proxy host, unless a
// host runs containers of another service than `except` (and p's) and
// force is not set: then it says so, as Kamal, and reports false.
func (g *globals) planProxyRemove(cmd *cobra.Command, p *project, pl *lifecyclePlan, force bool, except string) (bool, error) {
	hosts := proxyHosts(p)
	reports, err := g.inspect(cmd.Context(), hosts, nil, detailsMethod)
	if err != nil {
		return false, err
	}
	if err := hostErrors(reports); err != nil {
		return false, err
	}
	others := false
	for _, r := range reports {
		for _, c := range r.GetFacts().GetContainers() {
			svc := c.GetLabels()["service"]
			if svc != "" && svc != p.cfg.Service && svc != except && !(containerFilter{proxy: true}).match(c) && !isAccessoryOf(p, svc) {
				others = true
			}
		}
	}
	switch {
	case others && force:
		fmt.Fprintln(g.out(cmd), "Forcing, so removing the proxy, even though other apps are installed")
	case others:
		fmt.Fprintln(g.out(cmd), "Not removing the proxy, as other apps are installed, ignore this check with kctl proxy remove --force")
		return false, nil
	}
	pl.phase("proxy remove")
	addProxyControl(pl, hosts, "Removed proxy container", agentv1.ProxyControl_ACTION_REMOVE_PROXY)
	return true, nil
}

// isAccessoryOf reports whether svc is the service name of one of p's
// accessories.
func isAccessoryOf(p *project, svc string) bool {
	for _, a := range p.cfg.Accessories {
		if a.ServiceName == svc {
			return true
		}
	}
	return false
}
