package kctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newTokenListCmd(g *globals) *cobra.Command {
	return newControllerListCmd(g, "list", "List usable tokens", controllerv1.ControllerServiceClient.ListTokens, tokensListing)
}

func tokensListing(resp *controllerv1.ListTokensResponse) listing {
	type tok struct {
		ID           string `json:"id"`
		Role         string `json:"role"`
		Name         string `json:"name,omitempty"`
		OperatorRole string `json:"operator_role,omitempty"`
		Expires      string `json:"expires"`
		UsesLeft     uint32 `json:"uses_left"`
	}
	header := []string{"ID", "ROLE", "NAME", "OPERATOR ROLE", "EXPIRES", "USES LEFT"}
	return listOf(resp.GetTokens(), header, func(t *controllerv1.TokenInfo) (tok, []string) {
		r := strings.ToLower(strings.TrimPrefix(t.GetRole().String(), "ROLE_"))
		e := time.Unix(t.GetExpiresUnix(), 0).UTC().Format(time.RFC3339)
		return tok{t.GetId(), r, t.GetName(), t.GetOperatorRole(), e, t.GetUsesLeft()},
			[]string{t.GetId(), r, t.GetName(), t.GetOperatorRole(), e, fmt.Sprint(t.GetUsesLeft())}
	})
}
