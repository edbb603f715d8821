package kctl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
)

// newClusterUnlockKeyCmd shows the cluster's key-encryption key (the
// unlock key of controllers started with --autolock) and, with --rotate,
// replaces it first (docs/security.md). Admins only; audited.
func newClusterUnlockKeyCmd(g *globals) *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:   "unlock-key [--rotate]",
		Short: "Show the unlock key (key-encryption key); --rotate replaces it on every controller",
		Long: "Show the key-encryption key that opens the cluster's data key (with --autolock: the unlock key `kctl cluster unlock` gives a restarted controller).\n" +
			"With --rotate, the data key is wrapped under a new key in one Raft command, every controller receives the new key, and the old one opens nothing any more.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *controllerv1.UnlockKeyResponse
			err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				var err error
				resp, err = cc.UnlockKey(ctx, &controllerv1.UnlockKeyRequest{Rotate: rotate})
				return err
			})
			if err != nil {
				return err
			}
			key := base64.StdEncoding.EncodeToString(resp.GetUnlockKey())
			out := g.out(cmd)
			if !rotate {
				fmt.Fprintln(out, key)
				return nil
			}
			failed := 0
			for _, d := range resp.GetControllers() {
				if d.GetError() != "" {
					failed++
					fmt.Fprintf(out, "%s: did not take the new key: %s\n", d.GetController(), d.GetError())
				} else {
					fmt.Fprintf(out, "%s: has the new key\n", d.GetController())
				}
			}
			fmt.Fprintf(out, "\nNew unlock key (shown once; the old one no longer works):\n\n    %s\n\n", key)
			fmt.Fprintln(out, "Keep it safe, off the controllers (a password manager, a vault): with --autolock it is the only way to unlock a restarted controller.")
			if failed > 0 {
				fmt.Fprintln(out, "Give the controllers that did not take it the new key with `kctl cluster unlock --key-file FILE` once they are back.")
			}
			if err := updateCredentialsUnlockKey(g.credentialsPath(), key); err != nil {
				fmt.Fprintf(out, "warning: %v\n", err)
			}
			if failed > 0 {
				return fmt.Errorf("%d controller(s) did not take the new key", failed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the key on every controller before showing it")
	return cmd
}

// updateCredentialsUnlockKey replaces the unlock_key the credentials file
// holds (--init --autolock wrote one), so `kctl cluster unlock` keeps
// working; a file without one is left alone.
func updateCredentialsUnlockKey(path, key string) error {
	f, err := ctlclient.LoadFile(path)
	if err != nil || f.UnlockKey == "" {
		return nil
	}
	f.UnlockKey = key
	if err := f.Save(path); err != nil {
		return fmt.Errorf("the credentials file %s still holds the old unlock key: %w", path, err)
	}
	return nil
}

// newClusterDataKeyCmd groups the data key's commands.
func newClusterDataKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "data-key", Short: "Manage the data key that seals the CA key in Raft"}
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Seal the CA key under a new data key; every controller purges the old ciphertext from its disk",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *controllerv1.RotateDataKeyResponse
			err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				var err error
				resp, err = cc.RotateDataKey(ctx, &controllerv1.RotateDataKeyRequest{})
				return err
			})
			if err != nil {
				return err
			}
			var late []string
			for _, d := range resp.GetControllers() {
				if d.GetError() != "" {
					late = append(late, d.GetController()+" ("+d.GetError()+")")
				}
			}
			fmt.Fprintln(g.out(cmd), "data key rotated: the CA key is sealed under a new data key; each controller now compacts its Raft log and snapshots")
			if len(late) > 0 {
				return errors.New("not yet applied on " + strings.Join(late, ", ") + ": each purges when it catches up")
			}
			return nil
		},
	})
	return cmd
}
