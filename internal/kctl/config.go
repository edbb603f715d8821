package kctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kctl-dev/kctl/internal/kamalconfig"
	"github.com/kctl-dev/kctl/internal/secrets"
)

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
