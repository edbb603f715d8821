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
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kctl-dev/kctl/internal/cli"
)

// CredentialsEnv names the credentials file when --credentials is not given.
const CredentialsEnv = "KCTL_CREDENTIALS"

// Run runs kctl with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	if err := cli.Execute(ctx, root, expandAlias(root, args)); err != nil {
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
	addGlobalFlags(root, g)
	root.AddCommand(
		// The cluster.
		cli.NewVersionCmd("kctl"), newTokenCmd(g), newLoginCmd(g), newClusterCmd(g), newAgentsCmd(g), newOperatorsCmd(g),
		// Kamal's commands.
		newDeployCmd(g), newRedeployCmd(g), newRollbackCmd(g), newSetupCmd(g), newDeploysCmd(g),
		newLockCmd(g), newAuditCmd(g), newBuildCmd(g), newPruneCmd(g), newRegistryCmd(),
		newAppCmd(g), newProxyCmd(g), newAccessoryCmd(g), newDetailsCmd(g), newRemoveServiceCmd(g),
		// The project on disk.
		newConfigCmd(), newInitCmd(), newDocsCmd(), newSecretsCmd(),
	)
	addStreamCmds(root, g)
	return root
}

// addGlobalFlags adds Kamal's global options to the root: -c, -d, -r, -h,
// -p, -H, -q, -v and --lock-wait (with its timeout and interval), for every
// command. Commands that declared them before keep their own (same names).
// Like Thor, kctl accepts option names spelled with underscores too
// (--lock_wait, --drain_timeout).
func addGlobalFlags(root *cobra.Command, g *globals) {
	f := root.PersistentFlags()
	t := &g.target
	f.StringVarP(&t.configFile, "config-file", "c", "config/deploy.yml", "path to the config file")
	f.StringVarP(&t.destination, "destination", "d", "", "destination: also loads config/deploy.DEST.yml")
	f.StringSliceVarP(&t.roles, "roles", "r", nil, "run on these roles only (comma list, * wildcards)")
	f.StringSliceVarP(&t.hosts, "hosts", "h", nil, "run on these hosts (agent names) only (comma list, * wildcards)")
	f.Bool("help", false, "help for a command (Kamal's -h is --hosts)")
	f.BoolVarP(&t.primary, "primary", "p", false, "run on the primary host only")
	f.BoolVarP(&t.skipHooks, "skip-hooks", "H", false, "do not run hooks")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print errors only")
	f.BoolVarP(&g.verbose, "verbose", "v", false, "print every step's detail")
	f.BoolVar(&g.lock.wait, "lock-wait", false, "wait for the deploy lock instead of failing")
	f.DurationVar(&g.lock.timeout, "lock-wait-timeout", 900*time.Second, "how long --lock-wait waits")
	f.DurationVar(&g.lock.interval, "lock-wait-interval", 15*time.Second, "how often --lock-wait retries")
	root.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
	})
}
