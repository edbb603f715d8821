package kctl

import (
	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/hooks"
)

// newProxyRebootCmd is `kamal proxy reboot [--rolling] [-y]`: kamal-proxy
// replaced on every proxy host (one host at a time with --rolling), its
// routes kept; pre-proxy-reboot and post-proxy-reboot run around each
// group with KAMAL_HOSTS (-H skips them).
func newProxyRebootCmd(g *globals) *cobra.Command {
	var rolling, yes bool
	cmd := &cobra.Command{
		Use: "reboot", Short: "Reboot proxy on servers (stop container, remove container, start new container)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !confirm(cmd, yes, "This will cause a brief outage on each host. Are you sure?") {
				return nil
			}
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "proxy reboot", call: proxyAction, pre: hooks.PreProxyReboot, post: hooks.PostProxyReboot}
			hosts := proxyHosts(p)
			groups := [][]string{hosts}
			if rolling {
				groups = nil
				for _, h := range hosts {
					groups = append(groups, []string{h})
				}
			}
			for _, grp := range groups {
				pl.phase("proxy reboot", grp...)
				if err := addProxyBoot(p, pl, grp, "Rebooted proxy", true); err != nil {
					return err
				}
			}
			return g.runPlan(cmd, p, pl)
		},
	}
	cmd.Flags().BoolVar(&rolling, "rolling", false, "Reboot proxy on hosts in sequence, rather than in parallel")
	cmd.Flags().BoolVarP(&yes, "confirmed", "y", false, "Proceed without confirmation question")
	return cmd
}
