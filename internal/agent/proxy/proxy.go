// Package proxy drives kamal-proxy the way Kamal does: by running the
// `kamal-proxy` CLI inside the proxy container (`docker exec kamal-proxy
// kamal-proxy deploy <service> --target=<id>:<port> …`). The exec itself is
// behind the small Execer interface so the driver does not depend on how the
// agent reaches Docker.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors for the kamal-proxy failures an operator must tell apart.
var (
	// ErrHealthTimeout: the new target did not become healthy within the
	// deploy timeout (`target failed to become healthy within configured timeout`).
	ErrHealthTimeout = errors.New("proxy: target failed to become healthy")
	// ErrHostConflict: another service already owns the host/path.
	ErrHostConflict = errors.New("proxy: host settings conflict with another service")
	// ErrServiceNotFound: remove/stop/resume of a service the proxy does not know.
	ErrServiceNotFound = errors.New("proxy: service not found")
	// ErrCommand: any other non-zero exit of the kamal-proxy CLI.
	ErrCommand = errors.New("proxy: kamal-proxy command failed")
)

// DefaultContainer is the proxy container name Kamal uses.
const DefaultContainer = "kamal-proxy"

// ExecResult is the outcome of one command run in a container.
type ExecResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// Execer runs a command inside a running container and waits for it.
type Execer interface {
	Exec(ctx context.Context, container string, cmd []string) (ExecResult, error)
}

// ExecerFunc adapts a function to Execer.
type ExecerFunc func(ctx context.Context, container string, cmd []string) (ExecResult, error)

// Exec calls f.
func (f ExecerFunc) Exec(ctx context.Context, container string, cmd []string) (ExecResult, error) {
	return f(ctx, container, cmd)
}

var _ Execer = ExecerFunc(nil)

// Driver issues kamal-proxy commands to one proxy container.
type Driver struct {
	Exec      Execer
	Container string // default "kamal-proxy"
}

func (d *Driver) container() string {
	if d.Container != "" {
		return d.Container
	}
	return DefaultContainer
}

// DeployArgs builds the argument list Kamal runs after `docker exec
// kamal-proxy`: `kamal-proxy deploy <service> --target=<target> <flags…>`.
// Flags arrive formatted as Kamal renders them for a shell
// (`--host="example.com"`); docker exec involves no shell, so the quoting is
// removed here exactly as the remote shell would remove it.
func DeployArgs(service, target string, flags []string) ([]string, error) {
	args := []string{"kamal-proxy", "deploy", service, "--target=" + target}
	for _, f := range flags {
		u, err := ShellUnquote(f)
		if err != nil {
			return nil, fmt.Errorf("proxy: flag %q: %w", f, err)
		}
		args = append(args, u)
	}
	return args, nil
}

// Deploy registers target (`<container id>:<port>`) as the service's only
// target and blocks until kamal-proxy reports it healthy and the old target
// drained.
func (d *Driver) Deploy(ctx context.Context, service, target string, flags []string) error {
	args, err := DeployArgs(service, target, flags)
	if err != nil {
		return err
	}
	return d.run(ctx, args)
}

// Remove unregisters the service (`kamal-proxy remove <service>`).
func (d *Driver) Remove(ctx context.Context, service string) error {
	return d.run(ctx, []string{"kamal-proxy", "remove", service})
}

// Stop puts the service in maintenance (`kamal-proxy stop <service>
// [--drain-timeout=Ns] [--message=M]`).
func (d *Driver) Stop(ctx context.Context, service string, drainTimeout time.Duration, message string) error {
	args := []string{"kamal-proxy", "stop", service}
	if drainTimeout > 0 {
		args = append(args, "--drain-timeout="+strconv.Itoa(int(drainTimeout/time.Second))+"s")
	}
	if message != "" {
		args = append(args, "--message="+message)
	}
	return d.run(ctx, args)
}

// Resume brings the service back live (`kamal-proxy resume <service>`).
func (d *Driver) Resume(ctx context.Context, service string) error {
	return d.run(ctx, []string{"kamal-proxy", "resume", service})
}

// List returns `kamal-proxy list` output.
func (d *Driver) List(ctx context.Context) (string, error) {
	res, err := d.Exec.Exec(ctx, d.container(), []string{"kamal-proxy", "list"})
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", classify(res)
	}
	return res.Stdout, nil
}

func (d *Driver) run(ctx context.Context, args []string) error {
	res, err := d.Exec.Exec(ctx, d.container(), args)
	if err != nil {
		return fmt.Errorf("proxy: %s %s: %w", args[1], args[2], err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s %s: %w", args[1], args[2], classify(res))
	}
	return nil
}

// classify maps the CLI's `Error: <msg>` to a sentinel, keeping the text.
func classify(res ExecResult) error {
	msg := strings.TrimSpace(res.Stderr)
	if msg == "" {
		msg = strings.TrimSpace(res.Stdout)
	}
	msg = strings.TrimPrefix(msg, "Error: ")
	switch {
	case strings.Contains(msg, "target failed to become healthy"):
		// The proxy's message already says it: say it once.
		return &cliError{kind: ErrHealthTimeout, msg: msg}
	case strings.Contains(msg, "host settings conflict"), strings.Contains(msg, "host is used by another service"):
		return fmt.Errorf("%w: %s", ErrHostConflict, msg)
	case strings.Contains(msg, "service not found"):
		return fmt.Errorf("%w: %s", ErrServiceNotFound, msg)
	}
	return fmt.Errorf("%w (exit %d): %s", ErrCommand, res.ExitCode, msg)
}

// cliError is a kamal-proxy failure whose message already names its kind:
// it reads as "proxy: <message>" and matches the kind with errors.Is.
type cliError struct {
	kind error
	msg  string
}

func (e *cliError) Error() string { return "proxy: " + e.msg }
func (e *cliError) Unwrap() error { return e.kind }

// ShellUnquote removes POSIX-shell quoting from one word, as `sh` does for
// the words Kamal renders (`--host="a.com"` → `--host=a.com`, `'x'`, `\"`).
func ShellUnquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", errors.New("unterminated single quote")
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", errors.New("unterminated double quote")
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
