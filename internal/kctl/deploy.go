package kctl

import (
	"time"

	"github.com/spf13/cobra"
)

// deployFlags are the flags of deploy, redeploy, rollback and setup.
type deployFlags struct {
	project          targetFlags
	skipPush         bool
	noCache          bool
	detach           bool
	lockWait         bool
	lockWaitTimeout  time.Duration
	lockWaitInterval time.Duration
}

func addDeployFlags(cmd *cobra.Command, f *deployFlags, push bool) {
	addTargetFlags(cmd, &f.project)
	if push {
		cmd.Flags().BoolVarP(&f.skipPush, "skip-push", "P", false, "skip the image build and push; deploy an image already in the registry")
		cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "build without the Docker cache")
	}
	cmd.Flags().BoolVar(&f.detach, "detach", false, "submit and print the deploy's id without waiting (re-attach with: kctl deploys watch ID)")
	cmd.Flags().BoolVar(&f.lockWait, "lock-wait", false, "wait for the deploy lock instead of failing")
	cmd.Flags().DurationVar(&f.lockWaitTimeout, "lock-wait-timeout", 900*time.Second, "how long --lock-wait waits")
	cmd.Flags().DurationVar(&f.lockWaitInterval, "lock-wait-interval", 15*time.Second, "how often --lock-wait retries")
}

// newDeployLikeCmd makes deploy, redeploy and setup: Kamal's deploy flow
// with the differences o names.
func newDeployLikeCmd(g *globals, use, short string, o requestOptions) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return g.runDeploy(cmd, &f, o) },
	}
	addDeployFlags(cmd, &f, true)
	return cmd
}

func newDeployCmd(g *globals) *cobra.Command {
	return newDeployLikeCmd(g, "deploy", "Build, push and deploy the app to every server through the controller",
		requestOptions{Command: "deploy"})
}
