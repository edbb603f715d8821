package kctl

import (
	"github.com/spf13/cobra"
)

// newProxyDetailsCmd is `kamal proxy details`: the kamal-proxy container
// on each proxy host.
func newProxyDetailsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "details", Short: "Show details about proxy container from servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			return g.proxyDetails(cmd, p)
		},
	}
}

// proxyDetails prints the proxy container of every proxy host.
func (g *globals) proxyDetails(cmd *cobra.Command, p *project) error {
	reports, err := g.inspect(cmd.Context(), proxyHosts(p), nil, detailsMethod)
	if err != nil {
		return err
	}
	for _, r := range reports {
		if r.GetError() == "" {
			list := filterContainers(r.GetFacts(), containerFilter{proxy: true, runningOnly: true})
			putsByHost(cmd.OutOrStdout(), "Proxy", r.GetHost(), containerTable(list))
		}
	}
	return hostErrors(reports)
}
