package kctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/secrets"
)

func newSecretsExtractCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "extract NAME SECRETS_JSON",
		Short: "Pick one secret out of the output of secrets fetch",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := secrets.Extract(args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), v)
			return nil
		},
	}
}
