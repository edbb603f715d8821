package kctl

import "github.com/spf13/cobra"

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Show and change the controller cluster"}
	cmd.AddCommand(newClusterStatusCmd(g), newClusterRemoveCmd(g), newClusterUnlockCmd(g), newClusterUnlockKeyCmd(g), newClusterDataKeyCmd(g), newClusterSnapshotCmd(g), newClusterCACmd(g))
	return cmd
}
