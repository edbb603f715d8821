// Package kctl is the operator CLI: cluster, token, agent and operator
// management against the controllers' gRPC API, plus the commands other
// files register (register.go). Run is the whole program; cmd/kctl only
// maps its error to exit status 1.
package kctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
)

// Version is the build's version, set with -ldflags "-X ...kctl.Version=v".
var Version = "dev"

// CredentialsEnv names the credentials file when --credentials is not given.
const CredentialsEnv = "KCTL_CREDENTIALS"

// globals are the root's persistent flags.
type globals struct {
	credentials string
	timeout     time.Duration // per controller, connecting
	deadline    time.Duration // per command, overall
	stdout      io.Writer
}

// credentialsPath resolves --credentials, $KCTL_CREDENTIALS, then
// ~/.config/kctl/credentials.yaml.
func (g *globals) credentialsPath() string {
	if g.credentials != "" {
		return g.credentials
	}
	if p := os.Getenv(CredentialsEnv); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "kctl", "credentials.yaml")
}

// client loads the credentials and returns a client that tries every
// controller and saves addresses it learns.
func (g *globals) client() (*ctlclient.Client, error) {
	path := g.credentialsPath()
	f, err := ctlclient.LoadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no credentials at %s: run `kctl login --controller ADDR --token TOKEN`, or pass --credentials FILE", path)
		}
		return nil, fmt.Errorf("cannot read credentials: %w", err)
	}
	creds, err := f.Credentials()
	if err != nil {
		return nil, fmt.Errorf("credentials file %s is unusable: %w (kctl login again)", path, err)
	}
	cl := ctlclient.NewClient(creds, f.Controllers, g.timeout)
	cl.Learned = func(addrs []string) {
		f.Controllers = addrs
		_ = f.Save(path) // best effort: the next run knows every controller
	}
	return cl, nil
}

// call runs fn on whichever controller answers, bounded by --timeout.
func (g *globals) call(ctx context.Context, fn func(context.Context, controllerv1.ControllerServiceClient) error) error {
	return g.callFor(ctx, g.deadline, fn)
}

// callFor is call with an explicit overall bound.
func (g *globals) callFor(ctx context.Context, d time.Duration, fn func(context.Context, controllerv1.ControllerServiceClient) error) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err = cl.Call(ctx, fn)
	if ctx.Err() != nil && err != nil {
		return fmt.Errorf("no answer within %s (is a majority of the controllers running? raise --timeout to wait longer)", d)
	}
	return explain(err)
}

// explain turns a gRPC error into one line that says what to do next.
func explain(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	for _, p := range []string{"controller: ", "pki: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return fmt.Errorf("permission denied: %s (ask an admin for a role that may do this)", msg)
	case codes.Unauthenticated:
		if strings.Contains(msg, "revoked") {
			return fmt.Errorf("%s: these credentials were revoked; ask an admin for a new operator token and kctl login", msg)
		}
		if strings.Contains(msg, "expired") {
			return fmt.Errorf("%s: kctl login again with a new operator token", msg)
		}
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("%s (is a majority of the controllers running? try again)", msg)
	}
	return errors.New(msg)
}

// Run runs kctl with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		return fmt.Errorf("kctl: %w", err)
	}
	return nil
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout}
	root := &cobra.Command{
		Use:           "kctl",
		Short:         "Kamal-style zero-downtime Docker deploys without SSH",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.credentials, "credentials", "", "credentials file (default $"+CredentialsEnv+", then ~/.config/kctl/credentials.yaml)")
	root.PersistentFlags().DurationVar(&g.timeout, "connect-timeout", 5*time.Second, "how long to try connecting to each controller")
	root.PersistentFlags().DurationVar(&g.deadline, "timeout", 30*time.Second, "how long a command may take in all")
	root.AddCommand(
		versionCmd(g), tokenCmd(g), loginCmd(g), clusterCmd(g), agentsCmd(g), operatorsCmd(g),
	)
	for _, f := range commandFactories {
		root.AddCommand(f())
	}
	return root
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kctl's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.stdout, "kctl", Version)
			return nil
		},
	}
}

// output is the -o flag of listings.
type output string

func addOutput(cmd *cobra.Command, o *output) {
	cmd.Flags().StringVarP((*string)(o), "output", "o", "table", "table or json")
}

func (o output) check() error {
	if o != "table" && o != "json" {
		return fmt.Errorf("-o must be table or json, not %q", string(o))
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}
