package kctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newAgentsPingCmd(g *globals) *cobra.Command {
	var payload string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "ping NAME",
		Short: "Send a no-op command through the agent's command stream and wait for its answer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			var resp *controllerv1.PingAgentResponse
			err := g.callFor(cmd.Context(), wait+g.deadline, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
				ctx, cancel := context.WithTimeout(ctx, wait)
				defer cancel()
				resp, err = cc.PingAgent(ctx, &controllerv1.PingAgentRequest{Agent: args[0], Payload: payload})
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s answered command %s via %s in %s\n", args[0], resp.GetCommandId(), resp.GetController(), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&payload, "payload", "", "payload echoed by the agent")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the agent's answer")
	return cmd
}
