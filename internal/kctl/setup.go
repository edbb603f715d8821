package kctl

import "github.com/spf13/cobra"

func newSetupCmd(g *globals) *cobra.Command {
	return newDeployLikeCmd(g, "setup", "Boot the proxy and accessories, then deploy",
		requestOptions{Command: "setup", WithAccessories: true})
}
