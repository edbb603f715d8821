package kctl

import "github.com/spf13/cobra"

func newRegistryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Check the registry login"}
	cmd.AddCommand(newRegistryLoginCmd(), newRegistryLogoutCmd())
	return cmd
}
