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
			return printDeploys(cmd, o, resp.GetDeploys())
		})
	})
	cmd.AddCommand(newDeploysShowCmd(g), newDeploysWatchCmd(g), newDeploysCancelCmd(g))
	return cmd
}

func printDeploys(cmd *cobra.Command, o output, deploys []*deployv1.Record) error {
	if o == "json" {
		list := []map[string]any{}
		for _, d := range deploys {
			list = append(list, deployJSON(d))
		}
		return printJSON(cmd.OutOrStdout(), list)
	}
	var rows [][]string
	for _, d := range deploys {
		rows = append(rows, []string{d.GetId(), d.GetRequest().GetCommand(), d.GetRequest().GetService(),
			d.GetRequest().GetDestination(), d.GetRequest().GetVersion(), progress.StateName(d.GetState()), d.GetOperator(),
			time.UnixMilli(d.GetCreatedUnixMillis()).UTC().Format(time.RFC3339)})
	}
	return printTable(cmd.OutOrStdout(), []string{"ID", "COMMAND", "SERVICE", "DESTINATION", "VERSION", "STATE", "OPERATOR", "CREATED"}, rows)
}

func deployJSON(d *deployv1.Record) map[string]any {
	return map[string]any{
		"id": d.GetId(), "command": d.GetRequest().GetCommand(), "service": d.GetRequest().GetService(),
		"destination": d.GetRequest().GetDestination(), "version": d.GetRequest().GetVersion(),
		"state": progress.StateName(d.GetState()), "operator": d.GetOperator(), "error": d.GetError(),
		"created": time.UnixMilli(d.GetCreatedUnixMillis()).UTC().Format(time.RFC3339),
	}
}
