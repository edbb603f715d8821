package kctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// newClusterCACmd groups the CA rotation commands (docs/pki.md, "CA
// rotation").
func newClusterCACmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Rotate the cluster CA and watch the rotation"}
	cmd.AddCommand(newClusterCARotateCmd(g), newClusterCAStatusCmd(g))
	return cmd
}

func newClusterCARotateCmd(g *globals) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate [--grace 24h]",
		Short: "Issue a new cluster CA; every certificate is re-issued from it and the old CA is retired after the grace period",
		Long: `Issue a new cluster CA. Both CAs are trusted for the grace period: controllers
re-issue their own certificates at once, agents over their sessions, operators
on their next kctl command. After the grace period the old CA is retired: an
agent or operator that was offline for all of it must enrol again with a new
token. Join tokens made before the rotation work until then.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if grace < time.Second {
				return fmt.Errorf("--grace %s: give at least 1s (default 24h)", grace)
			}
			resp, err := ask(cmd.Context(), g, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (*controllerv1.RotateCAResponse, error) {
				return cc.RotateCA(ctx, &controllerv1.RotateCARequest{GraceMillis: grace.Milliseconds()})
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "new CA %s (old %s); the old CA is retired at %s\nfollow the re-issue with: kctl cluster ca status\n",
				resp.GetNewCaDigest(), resp.GetOldCaDigest(), time.UnixMilli(resp.GetRetireUnixMillis()).UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 24*time.Hour, "how long both CAs are trusted")
	return cmd
}

func newClusterCAStatusCmd(g *globals) *cobra.Command {
	return newListCmd("status", "Show the cluster CA, a rotation in progress and who still holds a certificate of the old CA", func(cmd *cobra.Command, o output) error {
		resp, err := ask(cmd.Context(), g, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (*controllerv1.CAStatusResponse, error) {
			return cc.CAStatus(ctx, &controllerv1.CAStatusRequest{})
		})
		if err != nil {
			return err
		}
		type holder struct {
			Role string `json:"role"`
			Name string `json:"name"`
			CA   string `json:"ca"`
		}
		out := struct {
			CADigest    string   `json:"ca_digest"`
			Rotating    bool     `json:"rotating"`
			OldCADigest string   `json:"old_ca_digest,omitempty"`
			Retire      string   `json:"retire_at,omitempty"`
			Pending     int      `json:"pending"`
			Holders     []holder `json:"holders"`
		}{CADigest: resp.GetCaDigest(), Rotating: resp.GetRotating(), OldCADigest: resp.GetOldCaDigest(), Holders: []holder{}}
		if resp.GetRotating() {
			out.Retire = time.UnixMilli(resp.GetRetireUnixMillis()).UTC().Format(time.RFC3339)
		}
		var rows [][]string
		for _, h := range resp.GetHolders() {
			ca := "current"
			if !h.GetOnNewCa() {
				ca = "old"
				out.Pending++
			}
			out.Holders = append(out.Holders, holder{h.GetRole(), h.GetName(), ca})
			rows = append(rows, []string{h.GetRole(), h.GetName(), ca})
		}
		if o != "json" {
			fmt.Fprintf(g.stdout, "CA %s\n", resp.GetCaDigest())
			if resp.GetRotating() {
				fmt.Fprintf(g.stdout, "rotating from %s: %d still on the old CA, which is retired at %s\n\n", resp.GetOldCaDigest(), out.Pending, out.Retire)
			} else {
				fmt.Fprintf(g.stdout, "no rotation in progress\n\n")
			}
		}
		return listing{out, []string{"ROLE", "NAME", "CA"}, rows}.print(g.stdout, o)
	})
}
