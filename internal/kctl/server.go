package kctl

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

// newServerExecCmd is `kctl server exec`: a shell command on the agents'
// hosts, admin only, refused by agents started without --allow-server-exec.
func newServerExecCmd(g *globals) *cobra.Command {
	var pf targetFlags
	var f execFlags
	c := &cobra.Command{
		Use:   "exec [options] CMD...",
		Short: "Run a custom command on the server (use --help to show options)",
		Long: `Run a custom command on the servers, through their agents, as the agent's
user (sh -c). Admin operators only, and only on agents started with
--allow-server-exec. With -i: on one host, in a terminal.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("no command given: kctl server exec [options] CMD")
			}
			p, err := loadProject(cmd.Context(), cmd, pf, false)
			if err != nil {
				return describeErr(err)
			}
			var targets []streamTarget
			hosts := p.allHosts()
			if f.interactive && len(hosts) > 0 {
				hosts = hosts[:1]
			}
			for _, h := range hosts {
				targets = append(targets, streamTarget{host: h, kind: "App", target: &streamv1.Target{Kind: streamv1.Target_KIND_SERVER}})
			}
			start := &streamv1.ExecStart{Command: []string{"sh", "-c", strings.Join(args, " ")}}
			return g.runExec(cmd, &f, start, targets, true)
		},
	}
	addTargetFlags(c, &pf)
	addExecFlags(c, &f, false)
	return c
}

// errBootstrap answers `kctl server bootstrap`.
var errBootstrap = errors.New(`server bootstrap has no meaning without SSH: kctl never logs in to a server.
Install Docker and the kctl agent on each server instead (README: "Add a server"):
  agent run --name HOST --data-dir /var/lib/kctl-agent --controller ADDR --token TOKEN`)

// newServerBootstrapCmd is `kctl server bootstrap`, which explains itself.
func newServerBootstrapCmd() *cobra.Command {
	var pf targetFlags
	c := &cobra.Command{
		Use:   "bootstrap",
		Short: "Set up Docker to run Kamal apps (kctl: install the agent instead)",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return errBootstrap },
	}
	addTargetFlags(c, &pf)
	return c
}

// addStreamCmds adds the streaming commands under app, accessory, proxy and
// server, creating a parent the root does not have yet.
func addStreamCmds(root *cobra.Command, g *globals) {
	parent := func(name, short string) *cobra.Command {
		for _, c := range root.Commands() {
			if c.Name() == name {
				return c
			}
		}
		c := &cobra.Command{Use: name, Short: short}
		root.AddCommand(c)
		return c
	}
	parent("app", "Manage application").AddCommand(newAppLogsCmd(g), newAppExecCmd(g))
	parent("accessory", "Manage accessories (db/redis/search)").AddCommand(newAccessoryLogsCmd(g), newAccessoryExecCmd(g))
	parent("proxy", "Manage kamal-proxy").AddCommand(newProxyLogsCmd(g))
	parent("server", "Bootstrap servers with curl and Docker").AddCommand(newServerExecCmd(g), newServerBootstrapCmd())
}
