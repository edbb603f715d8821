package kctl

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/secrets"
	"github.com/kctl-dev/kctl/internal/shellwords"
)

func newSecretsFetchCmd() *cobra.Command {
	var fa secrets.FetchArgs
	var inline bool
	cmd := &cobra.Command{
		Use:   "fetch [SECRETS...]",
		Short: "Fetch secrets from a vault through its CLI and print them as JSON",
		Long:  "Adapters: " + strings.Join(secrets.Adapters(), ", "),
		RunE: func(cmd *cobra.Command, args []string) error {
			fa.Secrets = args
			vals, err := secrets.Fetch(cmd.Context(), secrets.ExecRunner{}, fa)
			if err != nil {
				return err
			}
			// Kamal prints the JSON shell-escaped, ready for $(…) and extract.
			data, _ := json.Marshal(vals)
			if inline {
				fmt.Fprint(cmd.OutOrStdout(), shellwords.Escape(string(data)))
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), shellwords.Escape(string(data)))
			return nil
		},
	}
	cmd.Flags().StringVarP(&fa.Adapter, "adapter", "a", "", "secrets adapter")
	cmd.Flags().StringVar(&fa.Account, "account", "", "vault account")
	cmd.Flags().StringVar(&fa.From, "from", "", "prefix for every secret (e.g. Vault/Item)")
	cmd.Flags().BoolVar(&inline, "inline", false, "shell-escape the output")
	_ = cmd.MarkFlagRequired("adapter")
	return cmd
}
