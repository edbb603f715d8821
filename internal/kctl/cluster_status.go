package kctl

import (
	"fmt"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newClusterStatusCmd(g *globals) *cobra.Command {
	return newControllerListCmd(g, "status", "Show the controllers, their versions and the leader",
		controllerv1.ControllerServiceClient.ClusterStatus, clusterStatusListing)
}

func clusterStatusListing(resp *controllerv1.ClusterStatusResponse) listing {
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
	return listing{out, []string{"NAME", "ADDRESS", "STATE", "VOTER", "VERSION"}, rows}
}
