package kctl

import "github.com/spf13/cobra"

func newSecretsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secrets", Short: "Fetch, extract and print Kamal secrets"}
	cmd.AddCommand(newSecretsFetchCmd(), newSecretsExtractCmd(), newSecretsPrintCmd())
	return cmd
}
