package kctl

import (
	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/hooks"
)

// newAppBootCmd is `kamal app boot`: boot the version on the servers (or
// reboot it if already running) as a deploy's boot groups do, without
// pulling, booting the proxy or pruning.
func newAppBootCmd(g *globals) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use: "boot", Short: "Boot app on servers (or reboot app if already running)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t := g.target
			t.version = version
			p, err := loadProject(cmd.Context(), cmd, t, true)
			if err != nil {
				return describeErr(err)
			}
			req, err := buildRequest(p.cfg, p.dir, requestOptions{
				Command: "app boot", Selection: p.selection(), SkipPull: true, SkipProxyBoot: true, SkipPrune: true,
			})
			if err != nil {
				return describeErr(err)
			}
			return g.runAction(cmd, p, appAction, req, hooks.PreAppBoot, hooks.PostAppBoot)
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "version to boot (default $VERSION, then the git HEAD SHA)")
	return cmd
}
