package kctl

import (
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// newOperatorsCmd lists the operators; its subcommand removes one.
func newOperatorsCmd(g *globals) *cobra.Command {
	cmd := newControllerListCmd(g, "operators", "List operators", controllerv1.ControllerServiceClient.ListOperators, operatorsListing)
	cmd.AddCommand(newOperatorsRemoveCmd(g))
	return cmd
}

func operatorsListing(resp *controllerv1.ListOperatorsResponse) listing {
	type op struct {
		Name    string `json:"name"`
		Role    string `json:"role"`
		Created string `json:"created"`
	}
	return listOf(resp.GetOperators(), []string{"NAME", "ROLE", "CREATED"}, func(x *controllerv1.OperatorInfo) (op, []string) {
		c := time.Unix(x.GetCreatedUnix(), 0).UTC().Format(time.RFC3339)
		return op{x.GetName(), x.GetRole(), c}, []string{x.GetName(), x.GetRole(), c}
	})
}
