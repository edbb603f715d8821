package kctl

import "github.com/spf13/cobra"

func newPruneImagesCmd(g *globals) *cobra.Command {
	return newPruneKindCmd(g, "images", false, true, false)
}
