package kctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newClusterStatusCmd(g *globals) *cobra.Command {
	return newListCmd("status", "Show the controllers, their versions and the leader", func(cmd *cobra.Command, o output) error {
		resp, err := ask(cmd.Context(), g, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (*controllerv1.ClusterStatusResponse, error) {
			return cc.ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{})
		})
		if err != nil {
			return err
		}
		return printClusterStatus(g, o, resp)
	})
}

func printClusterStatus(g *globals, o output, resp *controllerv1.ClusterStatusResponse) error {
	type node struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		State   string `json:"state"`
		Voter   bool   `json:"voter"`
		Version string `json:"version"`
	}
	out := struct {
		Leader string `json:"leader"`
		Nodes  []node `json:"nodes"`
	}{Leader: resp.GetLeader(), Nodes: []node{}}
	var rows [][]string
	for _, n := range resp.GetNodes() {
		out.Nodes = append(out.Nodes, node{n.GetName(), n.GetAddress(), n.GetState(), n.GetVoter(), n.GetVersion()})
		rows = append(rows, []string{n.GetName(), n.GetAddress(), n.GetState(), fmt.Sprint(n.GetVoter()), n.GetVersion()})
	}
	if o == "json" {
		return printJSON(g.stdout, out)
	}
	return printTable(g.stdout, []string{"NAME", "ADDRESS", "STATE", "VOTER", "VERSION"}, rows)
}
