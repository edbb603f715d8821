package kctl

import (
	"github.com/spf13/cobra"
)

// newAppDetailsCmd is `kamal app details`: the running containers of each
// role on each host (`docker ps` by the service, role and destination
// labels).
func newAppDetailsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "details", Short: "Show details about app containers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			return g.appDetails(cmd, p)
		},
	}
}

// appDetails prints every selected role's running containers per host.
func (g *globals) appDetails(cmd *cobra.Command, p *project) error {
	rhs, err := roleHosts(p)
	if err != nil {
		return err
	}
	reports, err := g.inspect(cmd.Context(), hostsOf(rhs), nil, detailsMethod)
	if err != nil {
		return err
	}
	byHost := factsByHost(reports)
	for _, rh := range rhs {
		if f, ok := byHost[rh.host]; ok {
			list := filterContainers(f, containerFilter{service: p.cfg.Service, role: rh.role, destination: p.cfg.Destination, runningOnly: true})
			putsByHost(cmd.OutOrStdout(), "App", rh.host, containerTable(list))
		}
	}
	return hostErrors(reports)
}
