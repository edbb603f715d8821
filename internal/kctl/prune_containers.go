package kctl

import "github.com/spf13/cobra"

func newPruneContainersCmd(g *globals) *cobra.Command {
	return newPruneKindCmd(g, "containers", true, false, true)
}
