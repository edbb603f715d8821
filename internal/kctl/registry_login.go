package kctl

import (
	"fmt"

	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/spf13/cobra"
)

func newRegistryLoginCmd() *cobra.Command {
	var pf targetFlags
	cmd := &cobra.Command{
		Use: "login", Short: "Log in to the registry with deploy.yml's credentials (agents get them with every pull)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProject(cmd.Context(), cmd, pf, false)
			if err != nil {
				return describeErr(err)
			}
			auth, err := p.cfg.RegistryAuth()
			if err != nil {
				return err
			}
			cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
			if err != nil {
				return fmt.Errorf("registry login: no Docker engine: %w", err)
			}
			defer cli.Close()
			if _, err := cli.RegistryLogin(cmd.Context(), registry.AuthConfig{
				ServerAddress: auth.GetServer(), Username: auth.GetUsername(), Password: auth.GetPassword()}); err != nil {
				return fmt.Errorf("registry login to %s as %s failed: %s", auth.GetServer(), auth.GetUsername(), firstLine(err.Error()))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s. Agents receive the credentials with each pull and never store them.\n",
				auth.GetServer(), auth.GetUsername())
			return nil
		},
	}
	addTargetFlags(cmd, &pf)
	return cmd
}
