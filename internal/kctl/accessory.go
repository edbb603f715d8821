package kctl

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

// kctl leaves out Kamal's `accessory upgrade` (a Kamal 1 → 2 migration).
func newAccessoryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "accessory", Short: "Manage accessories (db/redis/search)"}
	cmd.AddCommand(newAccessoryBootCmd(g), newAccessoryRebootCmd(g), newAccessoryStartCmd(g), newAccessoryStopCmd(g),
		newAccessoryRestartCmd(g), newAccessoryDetailsCmd(g), newAccessoryRemoveCmd(g))
	return cmd
}

// accessories resolves NAME or "all" (Kamal: "No accessory by the name of
// 'x'").
func accessories(p *project, name string) ([]*kamalconfig.Accessory, error) {
	if name == "all" {
		return p.cfg.Accessories, nil
	}
	if a := p.cfg.Accessory(name); a != nil {
		return []*kamalconfig.Accessory{a}, nil
	}
	var names []string
	for _, a := range p.cfg.Accessories {
		names = append(names, a.Name)
	}
	return nil, fmt.Errorf("No accessory by the name of '%s' (options: %s)", name, strings.Join(names, ", "))
}

// accessoryHosts are the accessory's hosts within --hosts.
func accessoryHosts(p *project, a *kamalconfig.Accessory) []string {
	var out []string
	for _, h := range a.Hosts {
		if len(p.flags.hosts) == 0 || matchAny(p.flags.hosts, h) {
			out = append(out, h)
		}
	}
	return out
}

// newAccessoryPlanCmd makes `accessory <use> NAME|all`, planned per
// accessory by plan.
func newAccessoryPlanCmd(g *globals, use, short string, plan func(p *project, pl *lifecyclePlan, as []*kamalconfig.Accessory) error) *cobra.Command {
	return &cobra.Command{
		Use: use + " [NAME]", Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			as, err := accessories(p, args[0])
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "accessory " + use, call: accessoryAction}
			if err := plan(p, pl, as); err != nil {
				return err
			}
			return g.runPlan(cmd, p, pl)
		},
	}
}

// addAccessoryControl adds one container action per accessory host.
func addAccessoryControl(p *project, pl *lifecyclePlan, as []*kamalconfig.Accessory, what string, action agentv1.AccessoryControl_Action) {
	for _, a := range as {
		for _, h := range accessoryHosts(p, a) {
			pl.add(h, a.Name, what, &agentv1.Operation{Op: &agentv1.Operation_AccessoryControl{AccessoryControl: &agentv1.AccessoryControl{Action: action, Name: a.ServiceName}}})
		}
	}
}

// addAccessoryBoot adds the accessories' boot (network, then container,
// files, directories, proxy) on their hosts, from the deploy request
// kctl builds for setup.
func addAccessoryBoot(p *project, pl *lifecyclePlan, as []*kamalconfig.Accessory) error {
	req, err := buildRequest(p.cfg, p.dir, requestOptions{Command: pl.command, WithAccessories: true, SkipProxyBoot: true})
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, a := range as {
		want[a.Name] = true
	}
	pl.phase("network")
	seen := map[string]bool{}
	for _, a := range as {
		for _, h := range accessoryHosts(p, a) {
			if !seen[h] {
				seen[h] = true
				pl.add(h, "", "ensure network", &agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: scheduler.DefaultNetwork}}})
			}
		}
	}
	pl.phase("accessory boot")
	for _, acc := range req.GetAccessories() {
		if !want[acc.GetName()] {
			continue
		}
		for _, hc := range acc.GetHosts() {
			if len(p.flags.hosts) > 0 && !matchAny(p.flags.hosts, hc.GetHost()) {
				continue
			}
			pl.add(hc.GetHost(), acc.GetName(), "Booted accessory "+acc.GetName(), &agentv1.Operation{Op: &agentv1.Operation_BootAccessory{BootAccessory: &agentv1.BootAccessory{
				Container: hc.GetContainer(), Auth: acc.GetRegistry(), Proxy: acc.GetProxy(),
			}}})
		}
	}
	return nil
}
