package kctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// globalsOf rebuilds the root's persistent flags for commands registered
// through registerCommand, which the root builds without them.
func globalsOf(cmd *cobra.Command) (*globals, error) {
	g := &globals{stdout: cmd.OutOrStdout(), timeout: 5 * time.Second, deadline: 30 * time.Second}
	if f := cmd.Flags().Lookup("credentials"); f != nil {
		g.credentials = f.Value.String()
	}
	for name, dst := range map[string]*time.Duration{"connect-timeout": &g.timeout, "timeout": &g.deadline} {
		if f := cmd.Flags().Lookup(name); f != nil {
			if d, err := time.ParseDuration(f.Value.String()); err == nil {
				*dst = d
			}
		}
	}
	return g, nil
}

// conn runs fn with a connection to whichever controller answers.
func (g *globals) conn(ctx context.Context, fn func(context.Context, grpc.ClientConnInterface) error) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	return explain(cl.CallConn(ctx, fn))
}

// agentOpTimeout bounds one operation sent by hand (a pull can be slow).
const agentOpTimeout = 15 * time.Minute

// sendCommand sends one operation to an agent through the controllers and
// waits for its result.
func (g *globals) sendCommand(ctx context.Context, agent string, op *agentv1.Operation) (*agentv1.Result, error) {
	var res *agentv1.Result
	err := g.callFor(ctx, max(g.deadline, agentOpTimeout), func(ctx context.Context, c controllerv1.ControllerServiceClient) error {
		resp, err := c.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: agent, Operation: op, Wait: true})
		if err != nil {
			return err
		}
		res = resp.GetCommand().GetResult()
		if res == nil {
			return fmt.Errorf("agent %s did not answer", agent)
		}
		return nil
	})
	return res, err
}
