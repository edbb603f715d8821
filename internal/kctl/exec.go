package kctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/cli"
	"github.com/kctl-dev/kctl/internal/shellwords"
)

// execFlags are Kamal's exec options.
type execFlags struct {
	interactive, reuse, detach, raw bool
	env                             []string
}

// addExecFlags adds -i and --raw, and for app exec --reuse, -e and
// --detach. Flags come before the command: what follows it is the
// command's.
func addExecFlags(c *cobra.Command, f *execFlags, app bool) {
	fs := c.Flags()
	fs.SetInterspersed(false)
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "run on one host (the primary, or -h) in a terminal: keys, window size and exit status travel")
	fs.BoolVar(&f.raw, "raw", false, "print the output only, without the host headers")
	if app {
		fs.BoolVar(&f.reuse, "reuse", false, "run in the role's running container instead of a new one")
		fs.StringArrayVarP(&f.env, "env", "e", nil, "`KEY:VALUE` to set in the command's environment (repeatable; Thor's \"-e A:1 B:2\" works too)")
		fs.BoolVar(&f.detach, "detach", false, "start a new container running the command and leave it running")
	}
	dashes(c)
}

// command splits args into Thor's trailing -e pairs and the command line,
// joined and split as the remote shell would.
func (f *execFlags) command(cmd *cobra.Command, args []string) ([]string, error) {
	if cmd.Flags().Changed("env") {
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") && strings.Contains(args[0], ":") && !strings.Contains(args[0], " ") {
			f.env = append(f.env, args[0])
			args = args[1:]
		}
	}
	switch {
	case len(args) == 0:
		return nil, errors.New("no command given: kctl app exec [options] CMD")
	case f.detach && (f.interactive || f.reuse):
		return nil, errors.New("--detach cannot be combined with --interactive or --reuse")
	case f.raw && (f.interactive || f.detach):
		return nil, errors.New("--raw cannot be combined with --interactive or --detach")
	}
	words, err := shellwords.Split(strings.Join(args, " "))
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	return words, nil
}

// envs turns -e KEY:VALUE into the request's env.
func (f *execFlags) envs() ([]*streamv1.Env, error) {
	var out []*streamv1.Env
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("-e %q: want KEY:VALUE", kv)
		}
		out = append(out, &streamv1.Env{Key: k, Value: v})
	}
	return out, nil
}

// runExec runs start on every target (server: through ServerExec): with
// -i on the first only, in a terminal; else on all at once, the output
// grouped per host. The remote exit status becomes kctl's when one host
// runs it.
func (g *globals) runExec(cmd *cobra.Command, f *execFlags, start *streamv1.ExecStart, targets []streamTarget, server bool) error {
	if len(targets) == 0 {
		return errors.New("no host selected")
	}
	env, err := f.envs()
	if err != nil {
		return err
	}
	start.Env = env
	if f.interactive {
		t := targets[0]
		start.Agent, start.Target, start.Container, start.Interactive = t.host, t.target, t.container, true
		code, err := g.execInteractive(cmd, start, server)
		if err != nil {
			return err
		}
		if code != 0 {
			return &cli.ExitError{Code: code}
		}
		return nil
	}
	var mu sync.Mutex
	codes := map[string]int{}
	err = eachHost(cmd.Context(), cmd.OutOrStdout(), targets, f.raw, func(ctx context.Context, t streamTarget, out io.Writer) error {
		s := cloneStart(start, t)
		code, err := g.execStream(ctx, s, server, nil, out, out)
		mu.Lock()
		codes[t.key()] = code
		mu.Unlock()
		return err
	})
	if err != nil {
		return err
	}
	if len(targets) == 1 && codes[targets[0].key()] != 0 {
		return &cli.ExitError{Code: codes[targets[0].key()]}
	}
	var bad []string
	for _, t := range targets {
		if c := codes[t.key()]; c != 0 {
			bad = append(bad, fmt.Sprintf("%s: exit %d", t.host, c))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the command failed on %s", strings.Join(bad, ", "))
	}
	return nil
}

// cloneStart is start for one target.
func cloneStart(start *streamv1.ExecStart, t streamTarget) *streamv1.ExecStart {
	s := &streamv1.ExecStart{
		Agent: t.host, Target: t.target, Command: start.GetCommand(), Env: start.GetEnv(),
		Reuse: start.GetReuse(), Detach: start.GetDetach(), Container: t.container,
	}
	return s
}

// execSession is an open exec stream; send is safe for concurrent use.
type execSession struct {
	mu sync.Mutex
	st grpcExecStream
}

// grpcExecStream is StreamService's Exec and ServerExec client stream.
type grpcExecStream interface {
	Send(*streamv1.ExecInput) error
	Recv() (*streamv1.Output, error)
	CloseSend() error
}

func (s *execSession) send(in *streamv1.ExecInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Send(in)
}

// execStream runs one exec session: it sends start, calls feed (if any)
// with the session once it is open, and copies the output until the exit
// status, which it returns.
func (g *globals) execStream(ctx context.Context, start *streamv1.ExecStart, server bool, feed func(*execSession), stdout, stderr io.Writer) (int, error) {
	code := -1
	err := g.streamCall(ctx, func(ctx context.Context, c streamv1.StreamServiceClient, began func()) error {
		var st grpcExecStream
		var err error
		if server {
			st, err = c.ServerExec(ctx)
		} else {
			st, err = c.Exec(ctx)
		}
		if err != nil {
			return err
		}
		s := &execSession{st: st}
		if err := s.send(&streamv1.ExecInput{Msg: &streamv1.ExecInput_Start{Start: start}}); err != nil {
			_, rerr := st.Recv()
			return rerr
		}
		if feed != nil {
			go feed(s)
		}
		for {
			out, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return errors.New("the exec ended without an exit status")
			}
			if err != nil {
				return err
			}
			began()
			if e := out.GetExit(); e != nil {
				code = int(e.GetCode())
				return nil
			}
			if err := writeOutput(out, stdout, stderr); err != nil {
				return err
			}
		}
	})
	return code, err
}
