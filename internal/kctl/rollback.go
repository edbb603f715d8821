package kctl

import (
	"context"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

func newRollbackCmd(g *globals) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "rollback [VERSION]",
		Short: "Boot a retained version again; without VERSION, list the versions present on every host",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return g.listVersions(cmd, &f)
			}
			f.project.version = args[0]
			f.skipPush = true
			versions, err := g.presentVersions(cmd, &f)
			if err != nil {
				return err
			}
			if !slices.Contains(versions, args[0]) {
				return fmt.Errorf("The app version '%s' is not available as a container (use 'kctl rollback' for available versions)", args[0])
			}
			return g.runDeploy(cmd, &f, requestOptions{Command: "rollback", SkipPull: true, SkipProxyBoot: true, SkipPrune: true})
		},
	}
	addDeployFlags(cmd, &f, false)
	return cmd
}

// presentVersions asks the controller which versions exist as containers
// on every selected host of every role.
func (g *globals) presentVersions(cmd *cobra.Command, f *deployFlags) ([]string, error) {
	p, err := loadProject(cmd.Context(), cmd, f.project, false)
	if err != nil {
		return nil, describeErr(err)
	}
	sel, err := selectedHosts(p.cfg, p.selection())
	if err != nil {
		return nil, err
	}
	in := &deployv1.VersionsRequest{Service: p.cfg.Service, Destination: p.cfg.Destination, Roles: map[string]*deployv1.HostList{}}
	for role, hs := range sel {
		in.Roles[role] = &deployv1.HostList{Hosts: hs}
	}
	var out []string
	err = g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
		resp, err := c.Versions(ctx, in)
		out = resp.GetVersions()
		return err
	})
	return out, err
}

func (g *globals) listVersions(cmd *cobra.Command, f *deployFlags) error {
	versions, err := g.presentVersions(cmd, f)
	if err != nil {
		return err
	}
	if len(versions) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "No version is present on every host.")
		return nil
	}
	fmt.Fprintln(cmd.OutOrStdout(), "Versions present on every host, newest first (kctl rollback VERSION):")
	for _, v := range versions {
		fmt.Fprintln(cmd.OutOrStdout(), "  "+v)
	}
	return nil
}
