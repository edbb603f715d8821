package kctl

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

// newAppLogsCmd is `kctl app logs`.
func newAppLogsCmd(g *globals) *cobra.Command {
	var pf targetFlags
	var f logsFlags
	c := &cobra.Command{
		Use:   "logs",
		Short: "Show log lines from the app's containers on every selected host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProject(cmd.Context(), cmd, pf, false)
			if err != nil {
				return describeErr(err)
			}
			targets, err := appTargets(p)
			if err != nil {
				return err
			}
			return g.runLogs(cmd, &f, targets)
		},
	}
	addTargetFlags(c, &pf)
	addLogsFlags(c, &f, true)
	return c
}

// newAppExecCmd is `kctl app exec`.
func newAppExecCmd(g *globals) *cobra.Command {
	var pf targetFlags
	var f execFlags
	c := &cobra.Command{
		Use:   "exec [options] CMD...",
		Short: "Execute a custom command on servers within the app container (use --help to show options)",
		Long: `Execute a custom command on servers within the app container.

Without -i the command runs on every selected host at once and the output
is shown per host. With -i it runs on one host (the primary's first, or -h)
in a terminal: keys (Ctrl-C, Ctrl-D), window size and the exit status
travel, and the remote exit status becomes kctl's. --reuse runs in the
role's running container; otherwise in a new container of the role (its
env from the env file already on the host, its volumes and options),
removed afterwards. Killing kctl ends the remote process.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			words, err := f.command(cmd, args)
			if err != nil {
				return err
			}
			if pf.version == "" && os.Getenv("VERSION") == "" && !f.reuse {
				// Kamal's version_or_latest: the image tagged latest on deploy.
				pf.version = "latest"
				if pf.destination != "" {
					pf.version += "-" + pf.destination
				}
			}
			p, err := loadProject(cmd.Context(), cmd, pf, false)
			if err != nil {
				return describeErr(err)
			}
			targets, err := appTargets(p)
			if err != nil {
				return err
			}
			if f.interactive {
				targets = primaryTarget(p, targets)
			}
			start := &streamv1.ExecStart{Command: words, Reuse: f.reuse, Detach: f.detach}
			return g.runAppExec(cmd, p, &f, start, targets)
		},
	}
	addTargetFlags(c, &pf)
	addExecFlags(c, &f, true)
	return c
}

// runAppExec runs an app exec, giving each one-off container its role's
// spec without secret values (the agent reads them on the host).
func (g *globals) runAppExec(cmd *cobra.Command, p *project, f *execFlags, start *streamv1.ExecStart, targets []streamTarget) error {
	if !start.GetReuse() {
		for i, t := range targets {
			ct := p.cfg.AppContainer(t.target.GetRole(), t.host)
			if ct == nil {
				return errors.New("no such role: " + t.target.GetRole())
			}
			ct.SecretEnv = nil
			t.container = ct
			targets[i] = t
		}
	}
	return g.runExec(cmd, f, start, targets, false)
}

// appTargets lists the selected hosts with each of their roles.
func appTargets(p *project) ([]streamTarget, error) {
	sel, err := selectedHosts(p.cfg, p.selection())
	if err != nil {
		return nil, err
	}
	var out []streamTarget
	for _, r := range p.cfg.Roles {
		for _, h := range sel[r.Name] {
			out = append(out, streamTarget{host: h, kind: "App", target: &streamv1.Target{
				Kind: streamv1.Target_KIND_APP, Service: p.cfg.Service, Role: r.Name, Destination: p.cfg.Destination,
			}})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no host selected")
	}
	return out, nil
}

// primaryTarget keeps the one target an interactive session runs on: the
// primary role's first selected host, else the first selected.
func primaryTarget(p *project, targets []streamTarget) []streamTarget {
	for _, t := range targets {
		if t.target.GetRole() == p.cfg.PrimaryRoleName {
			return []streamTarget{t}
		}
	}
	return targets[:1]
}
