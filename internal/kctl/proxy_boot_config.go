package kctl

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// bootConfigDeprecation is the line Kamal 2.12 says (on stdout) for every
// `proxy boot_config` subcommand (lib/kamal/cli/proxy.rb).
const bootConfigDeprecation = "The proxy boot_config command is deprecated - set the config in the deploy YAML at proxy/run instead"

// newProxyBootConfigCmd is `kamal proxy boot_config set|get|reset`,
// deprecated in Kamal 2.12 (use `proxy.run` in deploy.yml). kctl keeps the
// command names and options; `get` prints the run options deploy.yml
// gives, `set` and `reset` refuse, as the agents only read deploy.yml's.
func newProxyBootConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "boot_config", Aliases: []string{"boot-config"}, Short: "Manage kamal-proxy boot configuration (deprecated: use proxy.run)"}
	set := &cobra.Command{
		Use: "set", Short: "Set a config variable (deprecated)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), bootConfigDeprecation)
			return errors.New("kctl keeps no boot config on the servers: set proxy.run in config/deploy.yml and run `kctl proxy reboot`")
		},
	}
	f := set.Flags()
	f.StringSlice("publish-host-ip", nil, "host IP address to bind HTTP/HTTPS traffic to (repeatable)")
	f.Bool("publish", true, "publish the proxy container ports to the host")
	f.Int("http-port", 80, "HTTP port to publish on the host")
	f.Int("https-port", 443, "HTTPS port to publish on the host")
	f.String("log-max-size", "10m", "max size of proxy logs")
	f.String("registry", "", "registry to use for the proxy image")
	f.String("repository", "", "repository for the proxy image")
	f.String("image-version", "", "version of the proxy to run")
	f.Int("metrics-port", 0, "port to report prometheus metrics on")
	f.Bool("debug", false, "whether to run the proxy in debug mode")
	f.StringSlice("docker-options", nil, "docker options to pass to the proxy container (option=value option2=value2)")
	get := &cobra.Command{
		Use: "get", Short: "Get boot configuration (deprecated)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), bootConfigDeprecation)
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			for _, h := range proxyHosts(p) {
				b := p.cfg.ProxyBoot(h)
				putsByHost(cmd.OutOrStdout(), "Proxy", h, fmt.Sprintf("%s %v", b.GetContainer().GetImage(), b.GetContainer().GetCmd()))
			}
			return nil
		},
	}
	reset := &cobra.Command{
		Use: "reset", Short: "Reset boot configuration (deprecated)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), bootConfigDeprecation)
			return errors.New("kctl keeps no boot config on the servers: nothing to reset (proxy.run in config/deploy.yml is the configuration)")
		},
	}
	cmd.AddCommand(set, get, reset)
	return cmd
}
