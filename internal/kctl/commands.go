package kctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
)

func tokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke join tokens (admin)"}
	var (
		role, name, opRole string
		ttl                time.Duration
		uses               uint32
	)
	create := &cobra.Command{
		Use:   "create --role controller|agent|operator",
		Short: "Create a join token and print it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r controllerv1.Role
			switch role {
			case "controller":
				r = controllerv1.Role_ROLE_CONTROLLER
			case "agent":
				r = controllerv1.Role_ROLE_AGENT
			case "operator":
				r = controllerv1.Role_ROLE_OPERATOR
			default:
				return fmt.Errorf("--role must be controller, agent or operator")
			}
			if r == controllerv1.Role_ROLE_OPERATOR && name == "" {
				return fmt.Errorf("an operator token needs --name (the operator's name)")
			}
			var resp *controllerv1.CreateTokenResponse
			err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
				resp, err = cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: r, Name: name, OperatorRole: opRole, TtlSeconds: int64(ttl / time.Second), Uses: uses})
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, resp.GetToken())
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "", "controller, agent or operator")
	create.Flags().StringVar(&name, "name", "", "the name the token is for (required for operators)")
	create.Flags().StringVar(&opRole, "operator-role", "", "operator tokens: admin, deployer or viewer (default viewer)")
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	create.Flags().Uint32Var(&uses, "uses", 1, "how many joins the token allows")

	var o output
	list := &cobra.Command{
		Use:   "list",
		Short: "List usable tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			var resp *controllerv1.ListTokensResponse
			if err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
				resp, err = cc.ListTokens(ctx, &controllerv1.ListTokensRequest{})
				return err
			}); err != nil {
				return err
			}
			type tok struct {
				ID           string `json:"id"`
				Role         string `json:"role"`
				Name         string `json:"name,omitempty"`
				OperatorRole string `json:"operator_role,omitempty"`
				Expires      string `json:"expires"`
				UsesLeft     uint32 `json:"uses_left"`
			}
			var out []tok
			var rows [][]string
			for _, t := range resp.GetTokens() {
				r := strings.ToLower(strings.TrimPrefix(t.GetRole().String(), "ROLE_"))
				e := time.Unix(t.GetExpiresUnix(), 0).UTC().Format(time.RFC3339)
				out = append(out, tok{t.GetId(), r, t.GetName(), t.GetOperatorRole(), e, t.GetUsesLeft()})
				rows = append(rows, []string{t.GetId(), r, t.GetName(), t.GetOperatorRole(), e, fmt.Sprint(t.GetUsesLeft())})
			}
			if o == "json" {
				if out == nil {
					out = []tok{}
				}
				return printJSON(g.stdout, out)
			}
			return printTable(g.stdout, []string{"ID", "ROLE", "NAME", "OPERATOR ROLE", "EXPIRES", "USES LEFT"}, rows)
		},
	}
	addOutput(list, &o)
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				_, err := cc.RevokeToken(ctx, &controllerv1.RevokeTokenRequest{Id: args[0]})
				return err
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func loginCmd(g *globals) *cobra.Command {
	var controllers, token, tokenFile string
	cmd := &cobra.Command{
		Use:   "login --controller ADDR --token TOKEN",
		Short: "Join as an operator: make a key here, get it certified, write the credentials file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := ctlclient.ResolveToken(token, tokenFile)
			if err != nil {
				return err
			}
			if controllers == "" || token == "" {
				return fmt.Errorf("login needs --controller ADDR and --token TOKEN (an admin makes one with `kctl token create --role operator --name NAME`)")
			}
			tok, err := pki.ParseToken(token)
			if err != nil {
				return fmt.Errorf("%w (copy the whole token)", err)
			}
			keyPEM, err := pki.NewKey()
			if err != nil {
				return err
			}
			csr, err := pki.NewCSR(keyPEM, pki.Identity{Role: pki.RoleOperator, Name: "operator"})
			if err != nil {
				return err
			}
			addrs := strings.Split(controllers, ",")
			resp, err := ctlclient.Join(cmd.Context(), addrs, tok, &controllerv1.JoinRequest{Token: token, CsrPem: csr}, g.timeout)
			if err != nil {
				return err
			}
			f := &ctlclient.File{
				ClusterID: resp.GetClusterId(), Name: resp.GetName(), Role: resp.GetOperatorRole(),
				Controllers: mergeAddrs(addrs, resp.GetControllers()),
				CA:          string(resp.GetCaPem()), Cert: string(resp.GetCertPem()), Key: string(keyPEM),
			}
			path := g.credentialsPath()
			if err := f.Save(path); err != nil {
				return fmt.Errorf("writing credentials: %w", err)
			}
			fmt.Fprintf(g.stdout, "logged in as %s (%s); credentials written to %s\n", f.Name, f.Role, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&controllers, "controller", "", "controller API address(es), comma-separated")
	cmd.Flags().StringVar(&token, "token", "", "operator join token (or --token-file, or $"+ctlclient.TokenEnv+")")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "read the operator join token from this file")
	return cmd
}

func mergeAddrs(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, a := range l {
			a = strings.TrimSpace(a)
			if a != "" && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

func clusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Show and change the controller cluster"}
	var o output
	st := &cobra.Command{
		Use:   "status",
		Short: "Show the controllers and the leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			var resp *controllerv1.ClusterStatusResponse
			if err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
				resp, err = cc.ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{})
				return err
			}); err != nil {
				return err
			}
			type node struct {
				Name    string `json:"name"`
				Address string `json:"address"`
				State   string `json:"state"`
				Voter   bool   `json:"voter"`
			}
			out := struct {
				Leader string `json:"leader"`
				Nodes  []node `json:"nodes"`
			}{Leader: resp.GetLeader(), Nodes: []node{}}
			var rows [][]string
			for _, n := range resp.GetNodes() {
				out.Nodes = append(out.Nodes, node{n.GetName(), n.GetAddress(), n.GetState(), n.GetVoter()})
				rows = append(rows, []string{n.GetName(), n.GetAddress(), n.GetState(), fmt.Sprint(n.GetVoter())})
			}
			if o == "json" {
				return printJSON(g.stdout, out)
			}
			return printTable(g.stdout, []string{"NAME", "ADDRESS", "STATE", "VOTER"}, rows)
		},
	}
	addOutput(st, &o)
	rm := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a controller from the cluster and revoke its certificate",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				_, err := cc.RemoveController(ctx, &controllerv1.RemoveControllerRequest{Name: args[0]})
				return err
			})
			if err == nil {
				fmt.Fprintf(g.stdout, "removed controller %s\n", args[0])
			}
			return err
		},
	}
	cmd.AddCommand(st, rm)
	return cmd
}

type agentJSON struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Controller string `json:"controller"`
	LastSeen   string `json:"last_seen"`
	Version    string `json:"version"`
}

func toAgentJSON(a *controllerv1.AgentInfo) agentJSON {
	ls := ""
	if a.GetLastSeenUnixMillis() > 0 {
		ls = time.UnixMilli(a.GetLastSeenUnixMillis()).UTC().Format(time.RFC3339)
	}
	return agentJSON{a.GetName(), a.GetStatus(), a.GetController(), ls, a.GetVersion()}
}

func agentsCmd(g *globals) *cobra.Command {
	var o output
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List agents and whether they are connected",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			var resp *controllerv1.ListAgentsResponse
			if err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
				resp, err = cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
				return err
			}); err != nil {
				return err
			}
			out := []agentJSON{}
			var rows [][]string
			for _, a := range resp.GetAgents() {
				j := toAgentJSON(a)
				out = append(out, j)
				rows = append(rows, []string{j.Name, j.Status, j.Controller, j.LastSeen, j.Version})
			}
			if o == "json" {
				return printJSON(g.stdout, out)
			}
			return printTable(g.stdout, []string{"NAME", "STATUS", "CONTROLLER", "LAST SEEN", "VERSION"}, rows)
		},
	}
	addOutput(cmd, &o)

	var do output
	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show an agent's facts (OS, arch, Docker version, containers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := do.check(); err != nil {
				return err
			}
			var resp *controllerv1.DescribeAgentResponse
			var fresh *agentv1.Facts
			if err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
				resp, err = cc.DescribeAgent(ctx, &controllerv1.DescribeAgentRequest{Name: args[0]})
				if err != nil || resp.GetAgent().GetStatus() != "connected" {
					return err
				}
				// Ask the agent through its command stream for current
				// facts; viewers, or a slow agent, get the recorded ones.
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				r, ferr := cc.SendCommand(wctx, &controllerv1.SendCommandRequest{Agent: args[0], Wait: true,
					Operation: &agentv1.Operation{Op: &agentv1.Operation_GatherFacts{GatherFacts: &agentv1.GatherFacts{}}}})
				if ferr == nil && r.GetCommand().GetResult().GetOk() {
					fresh = r.GetCommand().GetResult().GetFacts()
				}
				return nil
			}); err != nil {
				return err
			}
			facts := resp.GetFacts()
			if fresh != nil {
				facts = fresh
			}
			type container struct {
				Name   string `json:"name"`
				Image  string `json:"image"`
				State  string `json:"state"`
				Health string `json:"health,omitempty"`
			}
			out := struct {
				agentJSON
				Hostname      string      `json:"hostname"`
				OS            string      `json:"os"`
				Arch          string      `json:"arch"`
				DockerVersion string      `json:"docker_version"`
				AgentVersion  string      `json:"agent_version"`
				Containers    []container `json:"containers"`
			}{agentJSON: toAgentJSON(resp.GetAgent()), Hostname: facts.GetHostname(), OS: facts.GetOs(), Arch: facts.GetArch(),
				DockerVersion: facts.GetDockerVersion(), AgentVersion: facts.GetAgentVersion(), Containers: []container{}}
			for _, c := range facts.GetContainers() {
				out.Containers = append(out.Containers, container{c.GetName(), c.GetImage(), c.GetState(), c.GetHealth()})
			}
			if do == "json" {
				return printJSON(g.stdout, out)
			}
			w := g.stdout
			for _, kv := range [][2]string{{"Name", out.Name}, {"Status", out.Status}, {"Controller", out.Controller}, {"Last seen", out.LastSeen},
				{"Hostname", out.Hostname}, {"OS", out.OS}, {"Arch", out.Arch}, {"Docker", out.DockerVersion}, {"Agent", out.AgentVersion}} {
				fmt.Fprintf(w, "%-11s %s\n", kv[0]+":", kv[1])
			}
			fmt.Fprintf(w, "Containers: %d\n", len(out.Containers))
			if len(out.Containers) > 0 {
				var rows [][]string
				for _, c := range out.Containers {
					rows = append(rows, []string{"  " + c.Name, c.Image, c.State, c.Health})
				}
				return printTable(w, []string{"  NAME", "IMAGE", "STATE", "HEALTH"}, rows)
			}
			return nil
		},
	}
	addOutput(describe, &do)
	rm := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an agent and revoke its certificate: it can never connect again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				_, err := cc.RemoveAgent(ctx, &controllerv1.RemoveAgentRequest{Name: args[0]})
				return err
			})
			if err == nil {
				fmt.Fprintf(g.stdout, "removed agent %s\n", args[0])
			}
			return err
		},
	}
	var payload string
	var timeout time.Duration
	ping := &cobra.Command{
		Use:   "ping NAME",
		Short: "Send a no-op command through the agent's command stream and wait for its answer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			var resp *controllerv1.SendCommandResponse
			err := g.callFor(cmd.Context(), timeout+g.deadline, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				resp, err = cc.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: args[0], Wait: true,
					Operation: &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: payload}}}})
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s answered command %s via %s in %s\n", args[0], resp.GetCommand().GetId(), resp.GetCommand().GetController(), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	ping.Flags().StringVar(&payload, "payload", "", "payload echoed by the agent")
	ping.Flags().DurationVar(&timeout, "wait", 30*time.Second, "how long to wait for the agent's answer")
	cmd.AddCommand(describe, rm, ping)
	return cmd
}

func operatorsCmd(g *globals) *cobra.Command {
	var o output
	cmd := &cobra.Command{
		Use:   "operators",
		Short: "List operators",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			var resp *controllerv1.ListOperatorsResponse
			if err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
				resp, err = cc.ListOperators(ctx, &controllerv1.ListOperatorsRequest{})
				return err
			}); err != nil {
				return err
			}
			type op struct {
				Name    string `json:"name"`
				Role    string `json:"role"`
				Created string `json:"created"`
			}
			out := []op{}
			var rows [][]string
			for _, x := range resp.GetOperators() {
				c := time.Unix(x.GetCreatedUnix(), 0).UTC().Format(time.RFC3339)
				out = append(out, op{x.GetName(), x.GetRole(), c})
				rows = append(rows, []string{x.GetName(), x.GetRole(), c})
			}
			if o == "json" {
				return printJSON(g.stdout, out)
			}
			return printTable(g.stdout, []string{"NAME", "ROLE", "CREATED"}, rows)
		},
	}
	addOutput(cmd, &o)
	rm := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an operator and revoke their certificates",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := g.call(cmd.Context(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				_, err := cc.RemoveOperator(ctx, &controllerv1.RemoveOperatorRequest{Name: args[0]})
				return err
			})
			if err == nil {
				fmt.Fprintf(g.stdout, "removed operator %s\n", args[0])
			}
			return err
		},
	}
	cmd.AddCommand(rm)
	return cmd
}
