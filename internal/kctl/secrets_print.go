package kctl

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/kamalconfig"
)

func newSecretsPrintCmd() *cobra.Command {
	var pf configProjectFlags
	cmd := &cobra.Command{
		Use:   "print",
		Short: "Print every resolved secret as KEY=value (for debugging)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, store, err := pf.options()
			if err != nil {
				return err
			}
			// Honour secrets_path when the configuration can be read.
			if raw, err := kamalconfig.LoadRaw(opts); err == nil {
				store.SetSecretsPath(raw.Get("secrets_path").S())
			}
			all, err := store.All()
			if err != nil {
				return err
			}
			keys := make([]string, 0, len(all))
			for k := range all {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "%s=%s\n", k, all[k])
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&pf.destination, "destination", "d", "", "destination")
	cmd.Flags().StringVarP(&pf.configFile, "config-file", "c", "config/deploy.yml", "Kamal configuration file")
	return cmd
}
