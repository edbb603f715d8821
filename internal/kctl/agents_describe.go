package kctl

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newAgentsDescribeCmd(g *globals) *cobra.Command {
	var o output
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show an agent's facts (OS, arch, Docker version, containers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			info, facts, err := describeAgent(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			d := newAgentDescription(info, facts)
			if o == "json" {
				return printJSON(g.stdout, d)
			}
			return d.print(g.stdout)
		},
	}
	addOutput(cmd, &o)
	return cmd
}

// describeAgent returns what the controllers know of an agent and its
// facts: current ones, asked of the agent through its command stream, else
// (viewers, a slow or disconnected agent) the recorded ones.
func describeAgent(ctx context.Context, g *globals, name string) (*controllerv1.AgentInfo, *agentv1.Facts, error) {
	resp, err := ask(ctx, g, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (*controllerv1.DescribeAgentResponse, error) {
		return cc.DescribeAgent(ctx, &controllerv1.DescribeAgentRequest{Name: name, Fresh: true})
	})
	if err != nil {
		return nil, nil, err
	}
	return resp.GetAgent(), resp.GetFacts(), nil
}

// agentContainer is one container in an agent's description.
type agentContainer struct {
	Name   string `json:"name"`
	Image  string `json:"image"`
	State  string `json:"state"`
	Health string `json:"health,omitempty"`
}

// agentDescription is `kctl agents describe`'s output.
type agentDescription struct {
	agentJSON
	Hostname      string           `json:"hostname"`
	OS            string           `json:"os"`
	Arch          string           `json:"arch"`
	DockerVersion string           `json:"docker_version"`
	AgentVersion  string           `json:"agent_version"`
	Containers    []agentContainer `json:"containers"`
}

func newAgentDescription(info *controllerv1.AgentInfo, facts *agentv1.Facts) *agentDescription {
	d := &agentDescription{agentJSON: toAgentJSON(info), Hostname: facts.GetHostname(), OS: facts.GetOs(), Arch: facts.GetArch(),
		DockerVersion: facts.GetDockerVersion(), AgentVersion: facts.GetAgentVersion(), Containers: []agentContainer{}}
	for _, c := range facts.GetContainers() {
		d.Containers = append(d.Containers, agentContainer{c.GetName(), c.GetImage(), c.GetState(), c.GetHealth()})
	}
	return d
}

func (d *agentDescription) print(w io.Writer) error {
	for _, kv := range [][2]string{{"Name", d.Name}, {"Status", d.Status}, {"Controller", d.Controller}, {"Last seen", d.LastSeen},
		{"Hostname", d.Hostname}, {"OS", d.OS}, {"Arch", d.Arch}, {"Docker", d.DockerVersion}, {"Agent", d.AgentVersion}} {
		fmt.Fprintf(w, "%-11s %s\n", kv[0]+":", kv[1])
	}
	fmt.Fprintf(w, "Containers: %d\n", len(d.Containers))
	if len(d.Containers) == 0 {
		return nil
	}
	var rows [][]string
	for _, c := range d.Containers {
		rows = append(rows, []string{"  " + c.Name, c.Image, c.State, c.Health})
	}
	return printTable(w, []string{"  NAME", "IMAGE", "STATE", "HEALTH"}, rows)
}
