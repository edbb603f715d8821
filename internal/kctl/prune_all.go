package kctl

import "github.com/spf13/cobra"

func newPruneAllCmd(g *globals) *cobra.Command {
	return newPruneKindCmd(g, "all", true, true, false)
}
