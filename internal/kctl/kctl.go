// Package kctl is the operator CLI, one cobra command per file (kamal-proxy's
// internal/cmd is the model): cluster, token, agent and operator management
// against the controllers' gRPC API, and Kamal's commands (deploy, rollback,
// lock, build, prune, config…). Every command is made by a newXCmd(g)
// constructor and listed once, in newRoot. Run is the whole program;
// cmd/kctl only maps its error to exit status 1.
//
// What kctl shows or decides from the controllers' answers lives in
// subpackages that link no server code: progress (deploy progress), lockwait
// (--lock-wait) and explain (errors that say what to do next).
package kctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/cli"
)

// CredentialsEnv names the credentials file when --credentials is not given.
const CredentialsEnv = "KCTL_CREDENTIALS"

// Run runs kctl with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := cli.Execute(ctx, newRoot(stdout, stderr), args); err != nil {
		return fmt.Errorf("kctl: %w", err)
	}
	return nil
}

// newRoot makes the kctl command with every subcommand: the one list of
// commands.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout}
	root := cli.NewRoot("kctl", "Kamal-style zero-downtime Docker deploys without SSH", stdout, stderr)
	root.PersistentFlags().StringVar(&g.credentials, "credentials", "", "credentials file (default $"+CredentialsEnv+", then ~/.config/kctl/credentials.yaml)")
	root.PersistentFlags().DurationVar(&g.timeout, "connect-timeout", 5*time.Second, "how long to try connecting to each controller")
	root.PersistentFlags().DurationVar(&g.deadline, "timeout", 30*time.Second, "how long a command may take in all")
	root.AddCommand(
		// The cluster.
		cli.NewVersionCmd("kctl"), newTokenCmd(g), newLoginCmd(g), newClusterCmd(g), newAgentsCmd(g), newOperatorsCmd(g),
		// Kamal's commands.
		newDeployCmd(g), newRedeployCmd(g), newRollbackCmd(g), newSetupCmd(g), newDeploysCmd(g),
		newLockCmd(g), newAuditCmd(g), newBuildCmd(g), newPruneCmd(g), newRegistryCmd(),
		// The project on disk.
		newConfigCmd(), newInitCmd(), newDocsCmd(), newSecretsCmd(),
	)
	addStreamCmds(root, g)
	return root
}
