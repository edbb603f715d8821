package kctl

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// newOperatorsCmd lists the operators; its subcommand removes one.
func newOperatorsCmd(g *globals) *cobra.Command {
	cmd := newListCmd("operators", "List operators", func(cmd *cobra.Command, o output) error {
		resp, err := ask(cmd.Context(), g, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (*controllerv1.ListOperatorsResponse, error) {
			return cc.ListOperators(ctx, &controllerv1.ListOperatorsRequest{})
		})
		if err != nil {
			return err
		}
		type op struct {
			Name    string `json:"name"`
			Role    string `json:"role"`
			Created string `json:"created"`
		}
		out := []op{}
		var rows [][]string
		for _, x := range resp.GetOperators() {
			c := time.Unix(x.GetCreatedUnix(), 0).UTC().Format(time.RFC3339)
			out = append(out, op{x.GetName(), x.GetRole(), c})
			rows = append(rows, []string{x.GetName(), x.GetRole(), c})
		}
		if o == "json" {
			return printJSON(g.stdout, out)
		}
		return printTable(g.stdout, []string{"NAME", "ROLE", "CREATED"}, rows)
	})
	cmd.AddCommand(newOperatorsRemoveCmd(g))
	return cmd
}
