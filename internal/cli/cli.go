// Package cli holds what the cobra commands of the three binaries
// (controller, agent, kctl) share, so they read and behave alike: the root
// command's settings, the version command, how a command line runs, and
// main's signal handling and exit status.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/version"
)

// NewRoot returns a binary's root command: errors are returned, not printed
// (main prints them once), usage is shown by --help only, and `NAME
// --version` prints the version as `NAME version` does.
func NewRoot(name, short string, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           name,
		Short:         short,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate(name + " {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())
	})
	return root
}

// NewVersionCmd returns the `version` command: it prints "NAME VERSION".
func NewVersionCmd(name string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print " + name + "'s version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), name, version.Version)
			return nil
		},
	}
}

// Execute runs root with args (without the program name) under ctx.
func Execute(ctx context.Context, root *cobra.Command, args []string) error {
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// RunFunc is a binary's whole program: cmd/*/main.go passes it to Main.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Main runs run with the command line under a context that SIGINT and
// SIGTERM cancel, prints its error once and returns the exit status for
// main's os.Exit: 0, 1 on an error, or an ExitError's code.
func Main(run RunFunc) int {
	raiseFileLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return ee.Code
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// ExitError ends the program with Code and prints nothing more: a remote
// process's exit status (`kctl app exec -i`), its output already shown.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// raiseFileLimit raises the open-file soft limit to the hard limit, so a
// controller's connection caps (internal/netlimit), not the kernel, decide
// when connections are refused. (Go does this by itself since 1.19 and
// restores the old limit for child processes; this makes it explicit.)
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
