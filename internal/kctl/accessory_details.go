package kctl

import (
	"github.com/spf13/cobra"
)

// newAccessoryDetailsCmd is `kamal accessory details NAME|all`.
func newAccessoryDetailsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "details [NAME]", Short: "Show details about accessory on host (use NAME=all to show all accessories)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			return g.accessoryDetails(cmd, p, args[0])
		},
	}
}

// accessoryDetails prints each accessory's running container per host.
func (g *globals) accessoryDetails(cmd *cobra.Command, p *project, name string) error {
	as, err := accessories(p, name)
	if err != nil {
		return err
	}
	var hosts []string
	seen := map[string]bool{}
	for _, a := range as {
		for _, h := range accessoryHosts(p, a) {
			if !seen[h] {
				seen[h] = true
				hosts = append(hosts, h)
			}
		}
	}
	reports, err := g.inspect(cmd.Context(), hosts, nil, detailsMethod)
	if err != nil {
		return err
	}
	byHost := factsByHost(reports)
	for _, a := range as {
		for _, h := range accessoryHosts(p, a) {
			if f, ok := byHost[h]; ok {
				list := filterContainers(f, containerFilter{service: a.ServiceName, anyDestination: true, runningOnly: true})
				putsByHost(cmd.OutOrStdout(), "Accessory "+a.Name, h, containerTable(list))
			}
		}
	}
	return hostErrors(reports)
}
