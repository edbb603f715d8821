package kctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
)

// loginArgs are login's flags.
type loginArgs struct {
	controllers, token, tokenFile string
}

func newLoginCmd(g *globals) *cobra.Command {
	var a loginArgs
	cmd := &cobra.Command{
		Use:   "login --controller ADDR --token TOKEN",
		Short: "Join as an operator: make a key here, get it certified, write the credentials file",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.run(cmd.Context(), g) },
	}
	cmd.Flags().StringVar(&a.controllers, "controller", "", "controller API address(es), comma-separated")
	cmd.Flags().StringVar(&a.token, "token", "", "operator join token (or --token-file, or $"+ctlclient.TokenEnv+")")
	cmd.Flags().StringVar(&a.tokenFile, "token-file", "", "read the operator join token from this file")
	return cmd
}

func (a *loginArgs) run(ctx context.Context, g *globals) error {
	token, err := ctlclient.ResolveToken(a.token, a.tokenFile)
	if err != nil {
		return err
	}
	if a.controllers == "" || token == "" {
		return fmt.Errorf("login needs --controller ADDR and --token TOKEN (an admin makes one with `kctl token create --role operator --name NAME`)")
	}
	tok, err := pki.ParseToken(token)
	if err != nil {
		return fmt.Errorf("%w (copy the whole token)", err)
	}
	keyPEM, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(keyPEM, pki.Identity{Role: pki.RoleOperator, Name: "operator"})
	if err != nil {
		return err
	}
	addrs := strings.Split(a.controllers, ",")
	resp, err := ctlclient.Join(ctx, addrs, tok, &controllerv1.JoinRequest{Token: token, CsrPem: csr}, g.timeout)
	if err != nil {
		return err
	}
	f := &ctlclient.File{
		ClusterID: resp.GetClusterId(), Name: resp.GetName(), Role: resp.GetOperatorRole(),
		Controllers: ctlclient.MergeAddrs(addrs, resp.GetControllers()),
		CA:          string(resp.GetCaPem()), Cert: string(resp.GetCertPem()), Key: string(keyPEM),
	}
	path := g.credentialsPath()
	if err := f.Save(path); err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	fmt.Fprintf(g.stdout, "logged in as %s (%s); credentials written to %s\n", f.Name, f.Role, path)
	return nil
}
