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

// newAccessoryExecCmd is `kctl accessory exec NAME CMD…`: in the
// accessory's running container.
func newAccessoryExecCmd(g *globals) *cobra.Command {
	var pf targetFlags
	var f execFlags
	c := &cobra.Command{
		Use:   "exec NAME [options] CMD...",
		Short: "Execute a custom command on servers within the accessory container (use --help to show options)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := accessoryTargets(cmd, pf, args[0])
			if err != nil {
				return err
			}
			words, err := f.command(cmd, args[1:])
			if err != nil {
				return err
			}
			if f.interactive {
				targets = targets[:1]
			}
			return g.runExec(cmd, &f, &streamv1.ExecStart{Command: words, Reuse: true}, targets, false)
		},
	}
	addTargetFlags(c, &pf)
	addExecFlags(c, &f, false)
	c.Flags().BoolVar(&f.reuse, "reuse", true, "run in the accessory's running container (the only way here)")
	return c
}

// accessoryTargets lists the accessory's selected hosts.
func accessoryTargets(cmd *cobra.Command, pf targetFlags, name string) ([]streamTarget, error) {
	p, err := loadProject(cmd.Context(), cmd, pf, false)
	if err != nil {
		return nil, describeErr(err)
	}
	a := p.cfg.Accessory(name)
	if a == nil {
		return nil, fmt.Errorf("no accessory %q in the configuration", name)
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
		return nil, fmt.Errorf("accessory %s runs on none of the selected hosts", name)
	}
	return out, nil
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
