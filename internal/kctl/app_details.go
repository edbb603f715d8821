package kctl

import (
	"io"

	"github.com/spf13/cobra"

	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
)

// newAppDetailsCmd is `kamal app details`: the running containers of each
// role on each host (`docker ps` by the service, role and destination
// labels).
func newAppDetailsCmd(g *globals) *cobra.Command {
	return newAppViewCmd(g, "details", "Show details about app containers", detailsMethod, nil, showAppDetails)
}

// appDetails prints every selected role's running containers per host.
func (g *globals) appDetails(cmd *cobra.Command, p *project) error {
	rhs, reports, err := g.inspectRoles(cmd.Context(), p, nil, detailsMethod)
	if err != nil {
		return err
	}
	showAppDetails(cmd.OutOrStdout(), p, rhs, reports)
	return hostErrors(reports)
}

// showAppDetails prints each role's running containers per host.
func showAppDetails(w io.Writer, p *project, rhs []roleHost, reports []*opsv1.HostFacts) {
	byHost := factsByHost(reports)
	for _, rh := range rhs {
		if f, ok := byHost[rh.host]; ok {
			list := filterContainers(f, containerFilter{service: p.cfg.Service, role: rh.role, destination: p.cfg.Destination, runningOnly: true})
			putsByHost(w, "App", rh.host, containerTable(list))
		}
	}
}
