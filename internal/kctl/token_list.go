package kctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newTokenListCmd(g *globals) *cobra.Command {
	return newListCmd("list", "List usable tokens", func(cmd *cobra.Command, o output) error {
		resp, err := ask(cmd.Context(), g, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (*controllerv1.ListTokensResponse, error) {
			return cc.ListTokens(ctx, &controllerv1.ListTokensRequest{})
		})
		if err != nil {
			return err
		}
		return printTokens(g, o, resp.GetTokens())
	})
}

func printTokens(g *globals, o output, tokens []*controllerv1.TokenInfo) error {
	type tok struct {
		ID           string `json:"id"`
		Role         string `json:"role"`
		Name         string `json:"name,omitempty"`
		OperatorRole string `json:"operator_role,omitempty"`
		Expires      string `json:"expires"`
		UsesLeft     uint32 `json:"uses_left"`
	}
	out := []tok{}
	var rows [][]string
	for _, t := range tokens {
		r := strings.ToLower(strings.TrimPrefix(t.GetRole().String(), "ROLE_"))
		e := time.Unix(t.GetExpiresUnix(), 0).UTC().Format(time.RFC3339)
		out = append(out, tok{t.GetId(), r, t.GetName(), t.GetOperatorRole(), e, t.GetUsesLeft()})
		rows = append(rows, []string{t.GetId(), r, t.GetName(), t.GetOperatorRole(), e, fmt.Sprint(t.GetUsesLeft())})
	}
	if o == "json" {
		return printJSON(g.stdout, out)
	}
	return printTable(g.stdout, []string{"ID", "ROLE", "NAME", "OPERATOR ROLE", "EXPIRES", "USES LEFT"}, rows)
}
