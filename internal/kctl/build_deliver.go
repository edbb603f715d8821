package kctl

import "github.com/spf13/cobra"

func newBuildDeliverCmd(g *globals) *cobra.Command {
	return newBuildStepCmd(g, "deliver", "push, then pull", true, true)
}
