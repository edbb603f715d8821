package kctl

import "github.com/spf13/cobra"

func newRedeployCmd(g *globals) *cobra.Command {
	return newDeployLikeCmd(g, "redeploy", "Deploy without booting the proxy or pruning",
		requestOptions{Command: "redeploy", SkipProxyBoot: true, SkipPrune: true})
}
