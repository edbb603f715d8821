package kctl

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// newAppStaleContainersCmd is `kamal app stale_containers [-s/--stop]`:
// running containers of a role other than its current version, listed, or
// stopped with --stop (under the deploy lock).
func newAppStaleContainersCmd(g *globals) *cobra.Command {
	var stop bool
	cmd := &cobra.Command{
		Use: "stale_containers", Aliases: []string{"stale-containers"}, Short: "Detect app stale containers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			rhs, err := roleHosts(p)
			if err != nil {
				return err
			}
			if stop {
				pl := &lifecyclePlan{command: "app stale_containers", call: appAction}
				for _, rh := range rhs {
					pl.add(rh.host, rh.role, "Stopping stale containers", &agentv1.Operation{Op: &agentv1.Operation_StopStale{StopStale: &agentv1.StopStale{
						Service: p.cfg.Service, Role: rh.role, Destination: p.cfg.Destination,
						Stop: p.cfg.StopPolicy(rh.role), LatestImage: p.cfg.Repository() + ":" + p.cfg.LatestTag(),
					}}})
				}
				return g.runPlan(cmd, p, pl)
			}
			return g.listStale(cmd, p, rhs)
		},
	}
	cmd.Flags().BoolVarP(&stop, "stop", "s", false, "Stop the stale containers found")
	return cmd
}

// listStale prints Kamal's line for every stale container.
func (g *globals) listStale(cmd *cobra.Command, p *project, rhs []roleHost) error {
	reports, err := g.inspect(cmd.Context(), hostsOf(rhs), nil, containersMethod)
	if err != nil {
		return err
	}
	byHost := factsByHost(reports)
	for _, rh := range rhs {
		f, ok := byHost[rh.host]
		if !ok {
			continue
		}
		current := currentVersion(p, f, rh.role)
		prefix := p.cfg.ContainerPrefix(rh.role) + "-"
		var lines []string
		for _, c := range filterContainers(f, containerFilter{service: p.cfg.Service, role: rh.role, destination: p.cfg.Destination, runningOnly: true}) {
			v, ok := strings.CutPrefix(c.GetName(), prefix)
			if ok && v != current {
				lines = append(lines, fmt.Sprintf("Detected stale container for role %s with version %s (use `kctl app stale_containers --stop` to stop)", rh.role, v))
			}
		}
		if len(lines) > 0 {
			putsByHost(cmd.OutOrStdout(), "App", rh.host, strings.Join(lines, "\n"))
		}
	}
	return hostErrors(reports)
}
