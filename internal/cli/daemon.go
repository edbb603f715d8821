package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/ctlclient"
)

// RunDaemon runs a daemon's command line (args, without the program name)
// under ctx: its root has run (NewRunCmd), the version command and extra.
func RunDaemon(ctx context.Context, name, short string, run *cobra.Command, args []string, stdout, stderr io.Writer, extra ...*cobra.Command) error {
	root := NewRoot(name, short, stdout, stderr)
	root.AddCommand(run, NewVersionCmd(name))
	root.AddCommand(extra...)
	return Execute(ctx, root, args)
}

// DaemonFlags are the flags the daemons' `run` commands share (controller
// run, agent run).
type DaemonFlags struct {
	Name, DataDir    string
	Token, TokenFile string
	LogLevel         string
}

// NewRunCmd returns a daemon's `run` command: no arguments, the shared
// flags bound into d (name, dataDir and token say what --name, --data-dir
// and --token mean for this daemon), and run serving until its context is
// cancelled. The caller adds the daemon's own flags.
func NewRunCmd(use, short string, d *DaemonFlags, name, dataDir, token string, run func(context.Context) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return run(cmd.Context()) },
	}
	f := cmd.Flags()
	f.StringVar(&d.Name, "name", "", name)
	f.StringVar(&d.DataDir, "data-dir", "", dataDir)
	f.StringVar(&d.Token, "token", "", token)
	f.StringVar(&d.TokenFile, "token-file", "", "read the join token from this file (or set $"+ctlclient.TokenEnv+"), keeping it out of ps")
	f.StringVar(&d.LogLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// JoinToken is the join token from --token, else --token-file, else
// $KCTL_TOKEN; empty when none is given.
func (d *DaemonFlags) JoinToken() (string, error) {
	return ctlclient.ResolveToken(d.Token, d.TokenFile)
}

// Logger returns a text logger to w at --log-level.
func (d *DaemonFlags) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(d.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), nil
}
