package kctl

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

// newDeploysCmd lists the deploys; its subcommands show, watch and cancel one.
func newDeploysCmd(g *globals) *cobra.Command {
	cmd := newListCmd("deploys", "List deploys, newest first", func(cmd *cobra.Command, o output) error {
		return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
			resp, err := c.List(ctx, &deployv1.ListRequest{})
			if err != nil {
				return err
			}
			return deploysListing(resp.GetDeploys()).print(cmd.OutOrStdout(), o)
		})
	})
	cmd.AddCommand(newDeploysShowCmd(g), newDeploysWatchCmd(g), newDeploysCancelCmd(g))
	return cmd
}

// newDeploysIDCmd makes a `deploys VERB ID` command: run acts on the deploy
// ID names.
func newDeploysIDCmd(verb, short string, run func(cmd *cobra.Command, id string) error) *cobra.Command {
	return &cobra.Command{
		Use: verb + " ID", Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return run(cmd, args[0]) },
	}
}

func deploysListing(deploys []*deployv1.Record) listing {
	header := []string{"ID", "COMMAND", "SERVICE", "DESTINATION", "VERSION", "STATE", "OPERATOR", "CREATED"}
	return listOf(deploys, header, func(d *deployv1.Record) (map[string]any, []string) {
		return deployJSON(d), []string{d.GetId(), d.GetRequest().GetCommand(), d.GetRequest().GetService(),
			d.GetRequest().GetDestination(), d.GetRequest().GetVersion(), progress.StateName(d.GetState()), d.GetOperator(),
			time.UnixMilli(d.GetCreatedUnixMillis()).UTC().Format(time.RFC3339)}
	})
}

func deployJSON(d *deployv1.Record) map[string]any {
	return map[string]any{
		"id": d.GetId(), "command": d.GetRequest().GetCommand(), "service": d.GetRequest().GetService(),
		"destination": d.GetRequest().GetDestination(), "version": d.GetRequest().GetVersion(),
		"state": progress.StateName(d.GetState()), "operator": d.GetOperator(), "error": d.GetError(),
		"created": time.UnixMilli(d.GetCreatedUnixMillis()).UTC().Format(time.RFC3339),
	}
}
