package kctl

import (
	"github.com/spf13/cobra"
)

// newAppVersionCmd is `kamal app version`: the version running on each
// host (of its first role).
func newAppVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Show app version currently running on servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			rhs, err := roleHosts(p)
			if err != nil {
				return err
			}
			reports, err := g.inspect(cmd.Context(), hostsOf(rhs), nil, versionMethod)
			if err != nil {
				return err
			}
			byHost := factsByHost(reports)
			done := map[string]bool{}
			for _, rh := range rhs {
				if f, ok := byHost[rh.host]; ok && !done[rh.host] {
					done[rh.host] = true
					putsByHost(cmd.OutOrStdout(), "App", rh.host, currentVersion(p, f, rh.role))
				}
			}
			return hostErrors(reports)
		},
	}
}
