package kctl

import (
	"io"

	"github.com/spf13/cobra"

	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
)

// newAppContainersCmd is `kamal app containers`: every container of the
// service and destination, running or not (`docker container ls --all`).
func newAppContainersCmd(g *globals) *cobra.Command {
	return newAppViewCmd(g, "containers", "Show app containers on servers", containersMethod, nil,
		func(w io.Writer, p *project, _ []roleHost, reports []*opsv1.HostFacts) {
			for _, r := range reports {
				if r.GetError() == "" {
					list := filterContainers(r.GetFacts(), containerFilter{service: p.cfg.Service, destination: p.cfg.Destination})
					putsByHost(w, "App", r.GetHost(), containerTable(list))
				}
			}
		})
}
