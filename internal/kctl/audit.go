package kctl

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// auditArgs are audit's filters.
type auditArgs struct {
	service, dest, operator, host string
	since                         time.Duration
	limit                         uint32
}

func newAuditCmd(g *globals) *cobra.Command {
	var a auditArgs
	cmd := newListCmd("audit", "Query the audit history of every action, on any controller", func(cmd *cobra.Command, o output) error {
		in := &deployv1.AuditRequest{Service: a.service, Destination: a.dest, Operator: a.operator, Host: a.host, Limit: a.limit}
		if a.since > 0 {
			in.SinceUnixMillis = time.Now().Add(-a.since).UnixMilli()
		}
		return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
			resp, err := c.Audit(ctx, in)
			if err != nil {
				return err
			}
			return printAudit(cmd, o, resp.GetEntries())
		})
	})
	cmd.Flags().StringVar(&a.service, "service", "", "only this service")
	cmd.Flags().StringVarP(&a.dest, "destination", "d", "", "only this destination")
	cmd.Flags().StringVar(&a.operator, "operator", "", "only this operator")
	cmd.Flags().StringVar(&a.host, "host", "", "only this host")
	cmd.Flags().DurationVar(&a.since, "since", 0, "only entries newer than this (e.g. 24h)")
	cmd.Flags().Uint32Var(&a.limit, "limit", 0, "at most this many entries (newest)")
	return cmd
}

func printAudit(cmd *cobra.Command, o output, entries []*deployv1.AuditEntry) error {
	if o == "json" {
		list := []map[string]any{}
		for _, e := range entries {
			list = append(list, map[string]any{
				"time": time.UnixMilli(e.GetUnixMillis()).UTC().Format(time.RFC3339Nano), "operator": e.GetOperator(),
				"service": e.GetService(), "destination": e.GetDestination(), "role": e.GetRole(), "host": e.GetHost(),
				"version": e.GetVersion(), "action": e.GetAction(), "result": e.GetResult(), "deploy": e.GetDeployId(),
				"detail": e.GetDetail(),
			})
		}
		return printJSON(cmd.OutOrStdout(), list)
	}
	var rows [][]string
	for _, e := range entries {
		rows = append(rows, []string{time.UnixMilli(e.GetUnixMillis()).UTC().Format(time.RFC3339), e.GetOperator(),
			e.GetService(), e.GetDestination(), e.GetRole(), e.GetHost(), e.GetVersion(), e.GetAction(), e.GetResult()})
	}
	return printTable(cmd.OutOrStdout(), []string{"TIME", "OPERATOR", "SERVICE", "DEST", "ROLE", "HOST", "VERSION", "ACTION", "RESULT"}, rows)
}
