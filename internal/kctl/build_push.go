package kctl

import "github.com/spf13/cobra"

func newBuildPushCmd(g *globals) *cobra.Command {
	return newBuildStepCmd(g, "push", "Build the image from git HEAD (or builder.context) and push it to the registry", true, false)
}
