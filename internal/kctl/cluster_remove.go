package kctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func newClusterRemoveCmd(g *globals) *cobra.Command {
	cmd := newRemoveCmd(g, "Remove a controller (alive or dead) from the cluster and refuse its certificate", "controller",
		func(ctx context.Context, cc controllerv1.ControllerServiceClient, name string) error {
			_, err := cc.RemoveController(ctx, &controllerv1.RemoveControllerRequest{Name: name})
			return err
		})
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := run(cmd, args); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s's certificate is now refused on the API and Raft ports.\n", args[0])
		fmt.Fprintf(g.stdout, "%s held a copy of the cluster CA key (every controller does): rotate the CA (kctl cluster ca rotate) to make that copy worthless.\n", args[0])
		fmt.Fprintf(g.stdout, "to replace it, start a controller with an empty --data-dir and a new token (kctl token create --role controller).\n")
		return nil
	}
	return cmd
}
