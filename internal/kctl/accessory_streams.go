package kctl

import (
	"fmt"

	"github.com/spf13/cobra"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

// newAccessoryLogsCmd is `kctl accessory logs NAME`.
func newAccessoryLogsCmd(g *globals) *cobra.Command {
	var pf targetFlags
	var f logsFlags
	c := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show log lines from accessory on host (use --help to show options)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := accessoryTargets(cmd, pf, args[0])
			if err != nil {
				return err
			}
			return g.runLogs(cmd, &f, targets)
		},
	}
	addTargetFlags(c, &pf)
	addLogsFlags(c, &f, false)
	return c
}

// newAccessoryExecCmd is `kctl accessory exec NAME CMD…`: with --reuse in
// the accessory's running container, else (as Kamal's `docker run --rm`)
// in a new container of its image with its network, env and volumes, its
// secrets read from the env file already on the host.
func newAccessoryExecCmd(g *globals) *cobra.Command {
	var pf targetFlags
	var f execFlags
	c := &cobra.Command{
		Use:   "exec NAME [options] CMD...",
		Short: "Execute a custom command on servers within the accessory container (use --help to show options)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, targets, err := accessoryProjectTargets(cmd, pf, args[0])
			if err != nil {
				return err
			}
			// Thor takes options after NAME too: `accessory exec db --reuse CMD`.
			if err := cmd.Flags().Parse(args[1:]); err != nil {
				return err
			}
			words, err := f.command(cmd, cmd.Flags().Args())
			if err != nil {
				return err
			}
			if f.interactive {
				targets = targets[:1]
			}
			if !f.reuse {
				for i := range targets {
					ct := p.cfg.AccessoryContainer(args[0], targets[i].host)
					ct.SecretEnv, ct.Labels, ct.Restart = nil, nil, ""
					targets[i].container = ct
				}
			}
			return g.runExec(cmd, &f, &streamv1.ExecStart{Command: words, Reuse: f.reuse}, targets, false)
		},
	}
	addTargetFlags(c, &pf)
	addExecFlags(c, &f, false)
	c.Flags().BoolVar(&f.reuse, "reuse", false, "run in the accessory's running container instead of a new one")
	return c
}

// accessoryTargets lists the accessory's selected hosts.
func accessoryTargets(cmd *cobra.Command, pf targetFlags, name string) ([]streamTarget, error) {
	_, out, err := accessoryProjectTargets(cmd, pf, name)
	return out, err
}

// accessoryProjectTargets loads the project and lists the accessory's
// selected hosts.
func accessoryProjectTargets(cmd *cobra.Command, pf targetFlags, name string) (*project, []streamTarget, error) {
	p, err := loadProject(cmd.Context(), cmd, pf, false)
	if err != nil {
		return nil, nil, describeErr(err)
	}
	a := p.cfg.Accessory(name)
	if a == nil {
		return nil, nil, fmt.Errorf("no accessory %q in the configuration", name)
	}
	var out []streamTarget
	for _, h := range a.Hosts {
		if len(pf.hosts) > 0 && !matchAny(pf.hosts, h) {
			continue
		}
		out = append(out, streamTarget{host: h, kind: "Accessory", target: &streamv1.Target{
			Kind: streamv1.Target_KIND_ACCESSORY, Service: p.cfg.Service, Destination: p.cfg.Destination, Name: a.ServiceName,
		}})
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("accessory %s runs on none of the selected hosts", name)
	}
	return p, out, nil
}

// newProxyLogsCmd is `kctl proxy logs`.
func newProxyLogsCmd(g *globals) *cobra.Command {
	var pf targetFlags
	var f logsFlags
	c := &cobra.Command{
		Use:   "logs",
		Short: "Show log lines from kamal-proxy on servers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProject(cmd.Context(), cmd, pf, false)
			if err != nil {
				return describeErr(err)
			}
			var targets []streamTarget
			for _, h := range p.allHosts() {
				targets = append(targets, streamTarget{host: h, kind: "Proxy", target: &streamv1.Target{Kind: streamv1.Target_KIND_PROXY}})
			}
			if len(targets) == 0 {
				return fmt.Errorf("no host selected")
			}
			return g.runLogs(cmd, &f, targets)
		},
	}
	addTargetFlags(c, &pf)
	addLogsFlags(c, &f, false)
	return c
}
