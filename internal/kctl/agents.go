package kctl

import (
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// agentJSON is one agent as `kctl agents` shows it.
type agentJSON struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Controller string `json:"controller"`
	LastSeen   string `json:"last_seen"`
	Version    string `json:"version"`
	// EncryptionKey reports whether the agent has a certified encryption
	// key; one enrolled before keys existed cannot receive secrets until it
	// is re-enrolled.
	EncryptionKey bool `json:"encryption_key"`
}

func toAgentJSON(a *controllerv1.AgentInfo) agentJSON {
	ls := ""
	if a.GetLastSeenUnixMillis() > 0 {
		ls = time.UnixMilli(a.GetLastSeenUnixMillis()).UTC().Format(time.RFC3339)
	}
	return agentJSON{a.GetName(), a.GetStatus(), a.GetController(), ls, a.GetVersion(), len(a.GetEncryptionKeySig()) > 0}
}

// newAgentsCmd lists the agents; its subcommands add, describe, remove, ping and upgrade them.
func newAgentsCmd(g *globals) *cobra.Command {
	cmd := newControllerListCmd(g, "agents", "List agents, whether they are connected and their versions",
		controllerv1.ControllerServiceClient.ListAgents, agentsListing)
	cmd.AddCommand(newAgentsAddCmd(g), newAgentsDescribeCmd(g), newAgentsRemoveCmd(g), newAgentsPingCmd(g), newAgentsUpgradeCmd(g))
	return cmd
}

func agentsListing(resp *controllerv1.ListAgentsResponse) listing {
	return listOf(resp.GetAgents(), []string{"NAME", "STATUS", "CONTROLLER", "LAST SEEN", "VERSION"}, func(a *controllerv1.AgentInfo) (agentJSON, []string) {
		j := toAgentJSON(a)
		return j, []string{j.Name, j.Status, j.Controller, j.LastSeen, j.Version}
	})
}
