package kctl

import (
	"github.com/spf13/cobra"
)

// newAppContainersCmd is `kamal app containers`: every container of the
// service and destination, running or not (`docker container ls --all`).
func newAppContainersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "containers", Short: "Show app containers on servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			rhs, err := roleHosts(p)
			if err != nil {
				return err
			}
			reports, err := g.inspect(cmd.Context(), hostsOf(rhs), nil, containersMethod)
			if err != nil {
				return err
			}
			for _, r := range reports {
				if r.GetError() == "" {
					list := filterContainers(r.GetFacts(), containerFilter{service: p.cfg.Service, destination: p.cfg.Destination})
					putsByHost(cmd.OutOrStdout(), "App", r.GetHost(), containerTable(list))
				}
			}
			return hostErrors(reports)
		},
	}
}
