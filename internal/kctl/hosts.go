package kctl

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// onHosts sends one operation per host and reports each outcome.
func (g *globals) onHosts(cmd *cobra.Command, hosts []string, done string, op func(host string) *agentv1.Operation) error {
	var failed []string
	for _, h := range hosts {
		res, err := g.sendCommand(cmd.Context(), h, op(h))
		switch {
		case err != nil:
			failed = append(failed, h+": "+err.Error())
		case !res.GetOk():
			failed = append(failed, h+": "+res.GetError())
		default:
			fmt.Fprintf(cmd.OutOrStdout(), "  %-20s %s\n", h, done)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed on %d of %d hosts:\n  %s", len(failed), len(hosts), strings.Join(failed, "\n  "))
	}
	return nil
}
