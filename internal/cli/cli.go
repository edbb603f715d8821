// Package cli holds what the cobra commands of the three binaries
// (controller, agent, kctl) share, so they read and behave alike: the root
// command's settings, the version command and how a command line runs.
package cli

import (
	"context"
	"fmt"
	"io"

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
