package kctl

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newRegistryLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use: "logout", Short: "Nothing to undo: agents never store registry credentials", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "Agents keep no registry credentials (they travel with each pull); nothing to log out of.")
			return nil
		},
	}
}
