// Package kctl holds the kctl operator CLI's commands.
package kctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kctl-dev/kctl/internal/kamalconfig"
	"github.com/kctl-dev/kctl/internal/secrets"
	"github.com/kctl-dev/kctl/internal/shellwords"
)

func init() { registerCommand(newConfigCmd, newInitCmd, newDocsCmd, newSecretsCmd) }

// errExplainRefused is returned by `config --explain` after printing {"error": …}.
var errExplainRefused = errors.New("kctl: configuration refused")

type configProjectFlags struct {
	configFile  string
	destination string
	version     string
}

func (p *configProjectFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&p.configFile, "config-file", "c", "config/deploy.yml", "Kamal configuration file")
	cmd.Flags().StringVarP(&p.destination, "destination", "d", "", "destination (loads config/deploy.<dest>.yml too)")
	cmd.Flags().StringVar(&p.version, "version", "", "app version (default $VERSION)")
}

func (p *configProjectFlags) options() (kamalconfig.Options, *secrets.Store, error) {
	dir, err := os.Getwd()
	if err != nil {
		return kamalconfig.Options{}, nil, err
	}
	store := secrets.New(secrets.Options{Dir: dir, Destination: p.destination})
	return kamalconfig.Options{
		Dir: dir, ConfigFile: p.configFile, Destination: p.destination, Version: p.version,
		Secrets: store,
	}, store, nil
}

func newConfigCmd() *cobra.Command {
	var pf configProjectFlags
	var output string
	var explain bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective Kamal configuration (secrets redacted)",
		Long: "Reads config/deploy.yml (plus config/deploy.<dest>.yml with -d), renders its ERB, validates it as\n" +
			"Kamal 2.12 does and prints the effective configuration with every secret redacted, including per-role\n" +
			"detail: hosts, the docker run line and the kamal-proxy deploy request.\n\n" +
			"With --explain -o json it prints exactly what Kamal would run (the corpus *.expected.json structure),\n" +
			"or {\"error\": \"...\"} and exits 1.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, _, err := pf.options()
			if err != nil {
				return err
			}
			if explain {
				if opts.Version == "" {
					opts.Version = os.Getenv("VERSION")
				}
				out, err := kamalconfig.Explain(opts)
				if werr := configWriteAs(cmd.OutOrStdout(), "json", out); werr != nil {
					return werr
				}
				if err != nil {
					cmd.SilenceErrors, cmd.SilenceUsage = true, true
					return errExplainRefused
				}
				return nil
			}
			cfg, err := kamalconfig.Load(opts)
			if err != nil {
				return err
			}
			return configWriteAs(cmd.OutOrStdout(), output, cfg.Redacted())
		},
	}
	pf.bind(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().BoolVar(&explain, "explain", false, "print Kamal's derived commands (expected.json structure)")
	return cmd
}

func configWriteAs(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	case "yaml", "":
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		defer enc.Close()
		return enc.Encode(v)
	}
	return fmt.Errorf("kctl: unknown output format %q (yaml or json)", format)
}

func newSecretsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "secrets", Short: "Fetch, extract and print Kamal secrets"}
	var fa secrets.FetchArgs
	var inline bool
	fetch := &cobra.Command{
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
	fetch.Flags().StringVarP(&fa.Adapter, "adapter", "a", "", "secrets adapter")
	fetch.Flags().StringVar(&fa.Account, "account", "", "vault account")
	fetch.Flags().StringVar(&fa.From, "from", "", "prefix for every secret (e.g. Vault/Item)")
	fetch.Flags().BoolVar(&inline, "inline", false, "shell-escape the output")
	_ = fetch.MarkFlagRequired("adapter")
	extract := &cobra.Command{
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
	var pf configProjectFlags
	print := &cobra.Command{
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
	print.Flags().StringVarP(&pf.destination, "destination", "d", "", "destination")
	print.Flags().StringVarP(&pf.configFile, "config-file", "c", "config/deploy.yml", "Kamal configuration file")
	cmd.AddCommand(fetch, extract, print)
	return cmd
}
