package kctl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
)

// newClusterUnlockCmd gives every controller started with --autolock the
// unlock key (the key-encryption key, docs/security.md), one controller at
// a time: each keeps it in memory only. The key comes from the admin
// credentials --init wrote, or --key-file; never from the command line.
func newClusterUnlockCmd(g *globals) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "unlock [--key-file FILE]",
		Short: "Give controllers started with --autolock the unlock key so they can sign again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ctlclient.LoadFile(g.credentialsPath())
			if err != nil {
				return fmt.Errorf("cannot read credentials: %w", err)
			}
			creds, err := f.Credentials()
			if err != nil {
				return fmt.Errorf("credentials file %s is unusable: %w (kctl login again)", g.credentialsPath(), err)
			}
			enc := f.UnlockKey
			if keyFile != "" {
				b, err := os.ReadFile(keyFile)
				if err != nil {
					return err
				}
				enc = strings.TrimSpace(string(b))
			}
			if enc == "" {
				return errors.New("no unlock key: pass --key-file FILE holding the unlock_key of the admin credentials `controller run --init --autolock` wrote")
			}
			key, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				return errors.New("the unlock key is not base64 (copy the unlock_key value of the admin credentials)")
			}
			unlocked := 0
			for _, addr := range f.Controllers {
				var name string
				err := ctlclient.NewClient(creds, []string{addr}, g.timeout).Call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
					resp, err := cc.Unlock(ctx, &controllerv1.UnlockRequest{Key: key})
					name = resp.GetController()
					return err
				})
				if err != nil {
					fmt.Fprintf(g.out(cmd), "%s: %v\n", addr, err)
					continue
				}
				unlocked++
				fmt.Fprintf(g.out(cmd), "%s: %s unlocked\n", addr, name)
			}
			if unlocked == 0 {
				return errors.New("no controller was unlocked")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "file holding the unlock key (default: the unlock_key of the credentials file)")
	return cmd
}
