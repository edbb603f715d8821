package kctl

import (
	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

func newAppCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "Manage application"}
	cmd.AddCommand(
		newAppBootCmd(g), newAppStartCmd(g), newAppStopCmd(g), newAppDetailsCmd(g),
		newAppContainersCmd(g), newAppStaleContainersCmd(g), newAppImagesCmd(g), newAppRemoveCmd(g),
		newAppLiveCmd(g), newAppMaintenanceCmd(g), newAppVersionCmd(g),
	)
	return cmd
}

// newAppPlanCmd makes an app command that plans one step per selected role
// and host (plan returns nil to skip the pair) and runs it under the lock.
func newAppPlanCmd(g *globals, use, short string, plan func(p *project, pl *lifecyclePlan, rh roleHost)) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			rhs, err := roleHosts(p)
			if err != nil {
				return err
			}
			pl := &lifecyclePlan{command: "app " + use, call: appAction}
			for _, rh := range rhs {
				plan(p, pl, rh)
			}
			return g.runPlan(cmd, p, pl)
		},
	}
}

// appControl is the agent operation on a role's containers.
func appControl(p *project, role string, action agentv1.AppControl_Action) *agentv1.AppControl {
	return &agentv1.AppControl{Action: action, Service: p.cfg.Service, Role: role, Destination: p.cfg.Destination}
}

// proxyControl is a kamal-proxy command for a role's proxy service
// (`<service>-<role>[-<dest>]`).
func proxyControl(p *project, role string, action agentv1.ProxyControl_Action) *agentv1.ProxyControl {
	return &agentv1.ProxyControl{Action: action, Service: p.cfg.ContainerPrefix(role)}
}

// runsProxy reports whether role runs behind kamal-proxy.
func runsProxy(p *project, role string) bool { return p.cfg.ProxyDeploy(role) != nil }

func opAppControl(a *agentv1.AppControl) *agentv1.Operation {
	return &agentv1.Operation{Op: &agentv1.Operation_AppControl{AppControl: a}}
}

func opProxyControl(a *agentv1.ProxyControl) *agentv1.Operation {
	return &agentv1.Operation{Op: &agentv1.Operation_ProxyControl{ProxyControl: a}}
}

// removedState is the desired state of a removed role.
const removedState = deployv1.DesiredState_STATE_REMOVED
