package kctl

import (
	"fmt"

	"github.com/spf13/cobra"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

func newDeploysWatchCmd(g *globals) *cobra.Command {
	return newDeploysIDCmd("watch", "Follow a deploy's progress until it ends (from any machine)", func(cmd *cobra.Command, id string) error {
		rec, err := g.watch(cmd, id, nil, "")
		if err != nil {
			return err
		}
		if rec.GetState() != deployv1.State_STATE_SUCCEEDED {
			return fmt.Errorf("deploy %s %s: %s", rec.GetId(), progress.StateName(rec.GetState()), firstLine(rec.GetError()))
		}
		return nil
	})
}
