package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/docker/docker/api/types/container"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/agent/exec"
)

var _ exec.Streamer = (*Runtime)(nil)

// StreamLogs is `kamal app|accessory|proxy logs` on this host.
func (r *Runtime) StreamLogs(ctx context.Context, req *streamv1.LogsRequest, w io.Writer) error {
	id, err := r.streamContainer(ctx, req.GetTarget())
	if err != nil {
		return err
	}
	grep, invert, err := grepPattern(req.GetGrep(), req.GetGrepOptions())
	if err != nil {
		return err
	}
	err = r.Logs(ctx, id, LogsOptions{
		Follow: req.GetFollow(), Since: req.GetSince(), Lines: int(req.GetLines()),
		Grep: grep, Invert: invert, Timestamps: req.GetTimestamps(),
	}, w)
	return streamErr(err)
}

// StreamExec is `kamal app|accessory exec` on this host: in the running
// container with --reuse, else in a one-off container of the role's (or
// the accessory's) spec with the secrets of its env file on this host. The process is killed, and a one-off container removed, when ctx
// ends.
func (r *Runtime) StreamExec(ctx context.Context, start *streamv1.ExecStart, sio exec.StreamIO) (int, error) {
	o := ExecOptions{
		Cmd: start.GetCommand(), TTY: start.GetTty(), Stdin: sio.Stdin, Stdout: sio.Stdout, Stderr: sio.Stderr,
		Resize: sio.Resize, Signal: sio.Signal,
	}
	if sz := start.GetSize(); sz != nil {
		o.Size = TermSize{Rows: uint(sz.GetRows()), Cols: uint(sz.GetCols())}
	}
	for _, e := range start.GetEnv() {
		o.Env = append(o.Env, e.GetKey()+"="+e.GetValue())
	}
	t := start.GetTarget()
	if start.GetReuse() || t.GetKind() == streamv1.Target_KIND_PROXY {
		if start.GetDetach() {
			return -1, fmt.Errorf("%w: --detach runs a new container; it cannot be combined with --reuse", exec.ErrStreamInvalid)
		}
		id, err := r.streamContainer(ctx, t)
		if err != nil {
			return -1, err
		}
		code, err := r.Exec(ctx, id, o)
		return code, streamErr(err)
	}
	c, err := r.withEnvFile(start.GetContainer())
	if err != nil {
		return -1, err
	}
	if start.GetDetach() {
		if t.GetKind() != streamv1.Target_KIND_APP {
			return -1, fmt.Errorf("%w: --detach is for app exec only", exec.ErrStreamInvalid)
		}
		name, err := r.RunDetached(ctx, c, o)
		if err != nil {
			return -1, err
		}
		fmt.Fprintln(sio.Stdout, name)
		return 0, nil
	}
	code, err := r.RunOnce(ctx, c, o)
	return code, streamErr(err)
}

// streamContainer finds the container a stream is about.
func (r *Runtime) streamContainer(ctx context.Context, t *streamv1.Target) (string, error) {
	var id string
	switch t.GetKind() {
	case streamv1.Target_KIND_APP:
		if t.GetContainerId() != "" {
			id = t.GetContainerId()
			break
		}
		cid, err := r.CurrentContainer(ctx, t.GetService(), t.GetRole(), t.GetDestination())
		if err != nil {
			return "", streamErr(err)
		}
		return cid, nil
	case streamv1.Target_KIND_ACCESSORY:
		id = r.engineName(t.GetName())
	case streamv1.Target_KIND_PROXY:
		id = r.cfg.ProxyName
	default:
		return "", fmt.Errorf("%w: no container target", exec.ErrStreamInvalid)
	}
	if _, err := r.cli.ContainerInspect(ctx, id); err != nil {
		return "", streamErr(err)
	}
	return id, nil
}

// streamErr classifies engine errors for the operator.
func streamErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoContainer), isNotFound(err):
		return fmt.Errorf("%w: %w", exec.ErrStreamNotFound, err)
	case errors.Is(err, ErrBadOperation):
		return fmt.Errorf("%w: %w", exec.ErrStreamInvalid, err)
	}
	return err
}

// grepPattern turns `--grep P --grep-options O` into a Go regular
// expression: grep's -i, -v, -w, -x and -F (and -E, the default here).
func grepPattern(p, opts string) (string, bool, error) {
	if p == "" {
		return "", false, nil
	}
	invert, fixed, word, line, fold := false, false, false, false, false
	for _, o := range strings.Fields(opts) {
		if !strings.HasPrefix(o, "-") || strings.HasPrefix(o, "--") {
			switch o {
			case "--ignore-case":
				fold = true
			case "--invert-match":
				invert = true
			case "--fixed-strings":
				fixed = true
			case "--word-regexp":
				word = true
			case "--line-regexp":
				line = true
			default:
				return "", false, fmt.Errorf("%w: --grep-options %q is not supported (use -i, -v, -w, -x, -F, -E)", exec.ErrStreamInvalid, o)
			}
			continue
		}
		for _, c := range o[1:] {
			switch c {
			case 'i':
				fold = true
			case 'v':
				invert = true
			case 'F':
				fixed = true
			case 'w':
				word = true
			case 'x':
				line = true
			case 'E':
			default:
				return "", false, fmt.Errorf("%w: --grep-options -%c is not supported (use -i, -v, -w, -x, -F, -E)", exec.ErrStreamInvalid, c)
			}
		}
	}
	if fixed {
		p = regexp.QuoteMeta(p)
	}
	switch {
	case line:
		p = "^(?:" + p + ")$"
	case word:
		p = `\b(?:` + p + `)\b`
	}
	if fold {
		p = "(?i)" + p
	}
	if _, err := regexp.Compile(p); err != nil {
		return "", false, fmt.Errorf("%w: --grep: %w", exec.ErrStreamInvalid, err)
	}
	return p, invert, nil
}

// withEnvFile returns a copy of c whose secret env is read from the role's
// env file on this host (written by the last deploy), so no secret travels
// with an exec. A missing file leaves it empty, as Kamal's --env-file would
// fail: the error says to deploy first.
func (r *Runtime) withEnvFile(c *specv1.Container) (*specv1.Container, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: a one-off exec needs the role's container spec", exec.ErrStreamInvalid)
	}
	c = cloneContainer(c)
	c.SecretEnv = nil
	if c.GetEnvFile() == "" {
		return c, nil
	}
	path := filepath.Join(r.cfg.DataDir, filepath.Clean("/"+c.GetEnvFile()))
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: the role's env file %s is not on this host yet: deploy first, or use --reuse", exec.ErrStreamNotFound, c.GetEnvFile())
		}
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok || k == "" {
			continue
		}
		c.SecretEnv = append(c.SecretEnv, &specv1.KeyValue{Key: k, Value: strings.ReplaceAll(v, `\n`, "\n")})
	}
	return c, sc.Err()
}

// RunDetached starts a one-off container of the app spec and leaves it
// running (`kamal app exec --detach`: `docker run --detach`, no --rm). It
// returns the container's name.
func (r *Runtime) RunDetached(ctx context.Context, c *specv1.Container, o ExecOptions) (string, error) {
	o.Stdin, o.TTY = nil, false
	s, err := r.oneOffSpec(c, o)
	if err != nil {
		return "", err
	}
	id, err := r.create(ctx, s)
	if err != nil {
		return "", err
	}
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true})
		return "", fmt.Errorf("start %s: %w", s.Name, err)
	}
	return s.Name, nil
}
