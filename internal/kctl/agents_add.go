package kctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/shellwords"
)

// agentsAddArgs are agents add's flags.
type agentsAddArgs struct {
	ttl time.Duration
}

// newAgentsAddCmd makes a single-use token for one named agent and prints
// the command that enrols it; `kctl agents` shows it pending until then.
func newAgentsAddCmd(g *globals) *cobra.Command {
	var a agentsAddArgs
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Make a one-time token for a new server's agent and print the command to run there",
		Long: `Make a single-use join token bound to NAME (the name config/deploy.yml gives
the server) and print the one command to run on that server. The token
carries the cluster CA's digest, so the agent trusts only this cluster; it
reaches the server on the agent's standard input, never on a command line.
kctl agents shows NAME as pending until the agent connects.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.run(cmd.Context(), g, args[0]) },
	}
	cmd.Flags().DurationVar(&a.ttl, "ttl", 24*time.Hour, "how long the token is valid")
	return cmd
}

func (a *agentsAddArgs) run(ctx context.Context, g *globals, name string) error {
	var tok *controllerv1.CreateTokenResponse
	var st *controllerv1.ClusterStatusResponse
	err := g.call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		if st, err = cc.ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{}); err != nil {
			return err
		}
		tok, err = cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{
			Role: controllerv1.Role_ROLE_AGENT, Name: name, TtlSeconds: int64(a.ttl / time.Second), Uses: 1,
		})
		return err
	})
	if err != nil {
		return err
	}
	var addrs []string
	for _, n := range st.GetNodes() {
		if n.GetAddress() != "" {
			addrs = append(addrs, n.GetAddress())
		}
	}
	fmt.Fprint(g.stdout, enrolInstructions(name, strings.Join(addrs, ","), tok.GetToken(), a.ttl))
	return nil
}

// enrolInstructions is what agents add prints: the one command for a host
// with the kctl-agent package, and the same without it.
func enrolInstructions(name, controllers, token string, ttl time.Duration) string {
	q := shellwords.Escape
	return fmt.Sprintf(`Run this on %[1]s (valid for %[4]s, once):

  echo %[3]s | sudo kctl-agent setup --name %[1]s --controller %[2]s

With the kctl-agent package installed it writes /etc/kctl/agent.env (0600)
and starts kctl-agent.service. Without the package, run the agent itself:

  KCTL_TOKEN=%[3]s kctl-agent run --name %[1]s --controller %[2]s --data-dir /var/lib/kctl-agent

kctl agents shows %[1]s as pending until it connects.
`, q(name), q(controllers), q(token), ttl)
}
