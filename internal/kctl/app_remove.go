package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// newAppRemoveCmd is `kamal app remove`: stop, remove the containers, then
// the service's images, then its app directories.
func newAppRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "remove", Short: "Remove app containers and images from servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "app remove", call: appAction}
			if err := planAppRemove(p, pl); err != nil {
				return err
			}
			return g.runPlan(cmd, p, pl)
		},
	}
}

// planAppRemove adds Kamal's app remove: per role and host, stop (leaving
// kamal-proxy) and remove every container; then, per host, every image of
// the service no container uses; then, per host, the service's
// `.kamal/apps/<svc>` and kamal-proxy apps-config directories.
func planAppRemove(p *project, pl *lifecyclePlan) error {
	rhs, err := roleHosts(p)
	if err != nil {
		return err
	}
	pl.phase("app remove containers")
	var hosts []string
	seen := map[string]bool{}
	for _, rh := range rhs {
		pl.add(rh.host, rh.role, "Removed all app containers", opAppControl(appControl(p, rh.role, agentv1.AppControl_ACTION_REMOVE)))
		pl.want(p, rh.role, rh.host, removedState, "")
		if !seen[rh.host] {
			seen[rh.host] = true
			hosts = append(hosts, rh.host)
		}
	}
	pl.phase("app remove images")
	for _, h := range hosts {
		pl.add(h, "", "Removed all app images", &agentv1.Operation{Op: &agentv1.Operation_Prune{Prune: &agentv1.Prune{
			Service: p.cfg.Service, Images: true, Repository: p.cfg.Repository(),
		}}})
	}
	pl.phase("app remove directories")
	for _, h := range hosts {
		pl.add(h, "", "Removed "+p.cfg.AppDirectory(), opAppControl(&agentv1.AppControl{
			Action: agentv1.AppControl_ACTION_REMOVE_DIRECTORY, Service: p.cfg.Service, Destination: p.cfg.Destination,
		}))
	}
	return nil
}
