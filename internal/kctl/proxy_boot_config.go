package kctl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
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
				fmt.Fprintf(cmd.OutOrStdout(), "Host %s: %s\n", h, bootConfigLine(p.cfg.ProxyBoot(h).GetContainer()))
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

// bootConfigLine is what Kamal's `proxy boot_config get` prints after
// "Host h: " (lib/kamal/commands/proxy.rb boot_config: `echo "OPTIONS
// IMAGE:VERSION RUN_COMMAND"`, stripped by capture): the boot options, the
// image with its version, and the run command when it has options
// (`kamal-proxy run --debug --metrics-port 9090`; without options Kamal
// writes none).
func bootConfigLine(c *specv1.Container) string {
	parts := []string{bootOptions(c), c.GetImage()}
	if run := c.GetCmd(); run != "" && run != "kamal-proxy run" {
		parts = append(parts, run)
	}
	return strings.TrimSpace(strings.Join(parts, " "))
}

// bootOptions are the docker run options kamal-proxy boots with, as Kamal's
// `proxy boot_config get` prints them (`--publish 80:80 --publish 443:443
// --log-opt max-size=10m`, then --expose and the docker options).
func bootOptions(c *specv1.Container) string {
	var out []string
	for _, p := range c.GetPublish() {
		out = append(out, "--publish", p)
	}
	for _, o := range c.GetLogging().GetOptions() {
		out = append(out, "--log-opt", o.GetKey()+"="+o.GetValue())
	}
	for _, e := range c.GetExpose() {
		out = append(out, "--expose="+e)
	}
	for _, o := range c.GetOptions() {
		if o.GetBare() {
			out = append(out, "--"+o.GetName())
			continue
		}
		out = append(out, "--"+o.GetName()+"="+o.GetValue())
	}
	return strings.Join(out, " ")
}
