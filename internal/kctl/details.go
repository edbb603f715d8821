package kctl

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDetailsCmd is `kamal details`: proxy, app and every accessory's
// containers on every host, and the desired state recorded for the app.
func newDetailsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "details", Short: "Show details about all containers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			errs := []error{g.proxyDetails(cmd, p), g.appDetails(cmd, p)}
			if len(p.cfg.Accessories) > 0 {
				errs = append(errs, g.accessoryDetails(cmd, p, "all"))
			}
			return errors.Join(errs...)
		},
	}
}
