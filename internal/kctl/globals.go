package kctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/kctl/explain"
)

// globals are the root's persistent flags, shared by every command.
type globals struct {
	credentials string
	timeout     time.Duration // per controller, connecting
	deadline    time.Duration // per command, overall
	stdout      io.Writer

	// Kamal's global options (lib/kamal/cli/base.rb), for the commands
	// that do not declare their own (-c, -d, -r, -h, -p, -H).
	target  targetFlags
	quiet   bool
	verbose bool
	lock    lockWaitFlags

	// planned, when set (tests), receives each lifecycle request instead
	// of a controller.
	planned func(*deployv1.Request) error
}

// lockWaitFlags are Kamal's --lock-wait, --lock-wait-timeout and
// --lock-wait-interval.
type lockWaitFlags struct {
	wait     bool
	timeout  time.Duration
	interval time.Duration
}

// out is where a command prints progress: nothing with -q.
func (g *globals) out(cmd *cobra.Command) io.Writer {
	if g.quiet {
		return io.Discard
	}
	return cmd.OutOrStdout()
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
	// Renewal before expiry, and at once after a CA rotation.
	cl.Renewed = func(certPEM, keyPEM, caPEM []byte) error {
		f.Cert, f.Key = string(certPEM), string(keyPEM)
		if len(caPEM) > 0 {
			f.CA = string(caPEM)
		}
		return f.Save(path)
	}
	cl.Warn = func(err error) { fmt.Fprintln(os.Stderr, "kctl: warning:", err) }
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
	return explain.Explain(err)
}

// conn runs fn with a connection to whichever controller answers.
func (g *globals) conn(ctx context.Context, fn func(context.Context, grpc.ClientConnInterface) error) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	return explain.Explain(cl.CallConn(ctx, fn))
}

// deployClient runs fn against the deploy service of whichever controller
// answers.
func (g *globals) deployClient(ctx context.Context, fn func(context.Context, deployv1.DeployServiceClient) error) error {
	return g.conn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		return fn(ctx, deployv1.NewDeployServiceClient(cc))
	})
}

// agentOpTimeout bounds one operation sent by hand (a pull can be slow).
const agentOpTimeout = 15 * time.Minute

// agentOp runs one typed agent operation (PullImage, Prune) through the
// controllers and returns its result.
func (g *globals) agentOp(ctx context.Context, agent string, fn func(context.Context, controllerv1.ControllerServiceClient) (*controllerv1.AgentOperationResponse, error)) (*agentv1.Result, error) {
	var res *agentv1.Result
	err := g.callFor(ctx, max(g.deadline, agentOpTimeout), func(ctx context.Context, c controllerv1.ControllerServiceClient) error {
		resp, err := fn(ctx, c)
		if err != nil {
			return err
		}
		res = resp.GetCommand().GetResult()
		if res == nil {
			return fmt.Errorf("agent %s did not answer", agent)
		}
		return nil
	})
	return res, err
}

// ask runs one call on whichever controller answers and returns its reply.
func ask[R any](ctx context.Context, g *globals, fn func(context.Context, controllerv1.ControllerServiceClient) (R, error)) (R, error) {
	var r R
	err := g.call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		r, err = fn(ctx, cc)
		return err
	})
	return r, err
}
