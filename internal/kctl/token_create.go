package kctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// tokenCreateArgs are token create's flags.
type tokenCreateArgs struct {
	role, name, opRole string
	ttl                time.Duration
	uses               uint32
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var a tokenCreateArgs
	cmd := &cobra.Command{
		Use:   "create --role controller|agent|operator",
		Short: "Create a join token and print it",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.run(cmd.Context(), g) },
	}
	cmd.Flags().StringVar(&a.role, "role", "", "controller, agent or operator")
	cmd.Flags().StringVar(&a.name, "name", "", "the name the token is for (required for operators)")
	cmd.Flags().StringVar(&a.opRole, "operator-role", "", "operator tokens: admin, deployer or viewer (default viewer)")
	cmd.Flags().DurationVar(&a.ttl, "ttl", 24*time.Hour, "how long the token is valid")
	cmd.Flags().Uint32Var(&a.uses, "uses", 1, "how many joins the token allows")
	return cmd
}

func (a *tokenCreateArgs) run(ctx context.Context, g *globals) error {
	var r controllerv1.Role
	switch a.role {
	case "controller":
		r = controllerv1.Role_ROLE_CONTROLLER
	case "agent":
		r = controllerv1.Role_ROLE_AGENT
	case "operator":
		r = controllerv1.Role_ROLE_OPERATOR
	default:
		return fmt.Errorf("--role must be controller, agent or operator")
	}
	if r == controllerv1.Role_ROLE_OPERATOR && a.name == "" {
		return fmt.Errorf("an operator token needs --name (the operator's name)")
	}
	var resp *controllerv1.CreateTokenResponse
	err := g.call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		resp, err = cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: r, Name: a.name, OperatorRole: a.opRole, TtlSeconds: int64(a.ttl / time.Second), Uses: a.uses})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, resp.GetToken())
	return nil
}
