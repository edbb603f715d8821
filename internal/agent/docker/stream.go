package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/exec"
)

// LogsOptions mirrors `kamal app logs`: Lines is `--tail` (0 means all),
// Since is docker's --since (a duration like "10m" or a timestamp), Grep a
// regular expression applied per line (Invert keeps the lines that do not
// match, as grep -v), Timestamps docker's --timestamps.
type LogsOptions struct {
	Follow     bool
	Since      string
	Lines      int
	Grep       string
	Invert     bool
	Timestamps bool
}

// Logs streams the container's logs (stdout and stderr merged, as `2>&1`)
// to w until the end, or, with Follow, until ctx ends.
func (r *Runtime) Logs(ctx context.Context, containerID string, o LogsOptions, w io.Writer) error {
	var re *regexp.Regexp
	if o.Grep != "" {
		var err error
		if re, err = regexp.Compile(o.Grep); err != nil {
			return fmt.Errorf("docker: logs grep: %w", err)
		}
	}
	in, err := r.cli.ContainerInspect(ctx, containerID)
	if err != nil {
		return err
	}
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: o.Follow, Since: o.Since, Timestamps: o.Timestamps}
	if o.Lines > 0 {
		lo.Tail = strconv.Itoa(o.Lines)
	}
	rc, err := r.cli.ContainerLogs(ctx, containerID, lo)
	if err != nil {
		return err
	}
	defer rc.Close()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			rc.Close()
		case <-finished:
		}
	}()
	dst := w
	var pw *io.PipeWriter
	var filterDone chan error
	if re != nil {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		filterDone = make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			var werr error
			for sc.Scan() {
				if werr == nil && re.Match(sc.Bytes()) != o.Invert {
					_, werr = fmt.Fprintf(w, "%s\n", sc.Bytes())
				}
			}
			pr.CloseWithError(werr)
			filterDone <- werr
		}()
		dst = pw
	}
	sw := &syncWriter{w: dst}
	if in.Config != nil && in.Config.Tty {
		_, err = io.Copy(sw, rc)
	} else {
		_, err = demux(sw, sw, rc)
	}
	if pw != nil {
		pw.Close()
		if ferr := <-filterDone; err == nil {
			err = ferr
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// CurrentContainer returns the ID of the role's current running container
// (Kamal §3.2), the one `kamal app logs` and `app exec --reuse` use.
func (r *Runtime) CurrentContainer(ctx context.Context, service, role, dest string) (string, error) {
	c, err := r.currentContainer(ctx, service, role, dest, "", "")
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", fmt.Errorf("%w: no running container for %s", ErrNoContainer, prefix(service, role, dest))
	}
	return c.ID, nil
}

// TermSize is a terminal size.
type TermSize = exec.TermSize

// ExecOptions is one command to run. With TTY, Stdout receives the merged
// terminal output and Resize carries window changes; Stdin may be nil.
type ExecOptions struct {
	Cmd     []string
	Env     []string
	User    string
	WorkDir string
	TTY     bool
	Size    TermSize
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Resize  <-chan TermSize
	// Signal carries signals for the process (Exec: sent to the exec's
	// Pid; RunOnce: to the container).
	Signal <-chan syscall.Signal
}

// Exec runs a command in the running container (`kamal app exec --reuse`,
// `docker exec`) and returns its exit code.
func (r *Runtime) Exec(ctx context.Context, containerID string, o ExecOptions) (int, error) {
	eo := container.ExecOptions{
		Cmd: o.Cmd, Env: o.Env, User: o.User, WorkingDir: o.WorkDir, Tty: o.TTY,
		AttachStdin: o.Stdin != nil, AttachStdout: true, AttachStderr: true,
	}
	if o.TTY && o.Size.Rows > 0 {
		eo.ConsoleSize = &[2]uint{o.Size.Rows, o.Size.Cols}
	}
	ex, err := r.cli.ContainerExecCreate(ctx, containerID, eo)
	if err != nil {
		return -1, err
	}
	att, err := r.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{Tty: o.TTY, ConsoleSize: eo.ConsoleSize})
	if err != nil {
		return -1, err
	}
	defer att.Close()
	resize := func(s TermSize) error {
		return r.cli.ContainerExecResize(ctx, ex.ID, container.ResizeOptions{Height: s.Rows, Width: s.Cols})
	}
	if o.TTY && o.Size.Rows > 0 {
		// Engines before API 1.42 ignore ConsoleSize: size the terminal
		// once the process runs, as the docker CLI does.
		for i := 0; i < 10 && resize(o.Size) != nil; i++ {
			if sleepCtx(ctx, 10*time.Millisecond) != nil {
				break
			}
		}
	}
	stopSignals := forward(o.Signal, func(sig syscall.Signal) { r.signalExec(ex.ID, sig) })
	defer stopSignals()
	if err := pump(ctx, att.Conn, att.Reader, att.CloseWrite, o, resize); err != nil {
		if ctx.Err() != nil {
			// The Engine API cannot end an exec: kill its process.
			r.signalExec(ex.ID, syscall.SIGKILL)
		}
		return -1, err
	}
	for {
		in, err := r.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return -1, err
		}
		if !in.Running {
			return in.ExitCode, nil
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return -1, err
		}
	}
}

// RunOnce runs a command in a fresh container of the app spec, removed
// afterwards (`kamal app exec` without --reuse: `docker run --rm --name
// <prefix>-exec-<version>-<6 hex>` with the role's env, volumes and
// options, without labels or restart policy). It returns the exit code.
func (r *Runtime) RunOnce(ctx context.Context, c *specv1.Container, o ExecOptions) (int, error) {
	s, err := r.oneOffSpec(c, o)
	if err != nil {
		return -1, err
	}
	// Created whatever ctx does meanwhile: a create cancelled in flight
	// may still leave the container, which only its id can remove.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	id, err := r.create(cctx, s)
	cancel()
	if err != nil {
		return -1, err
	}
	defer func() {
		_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true})
	}()
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	att, err := r.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: o.Stdin != nil, Stdout: true, Stderr: true})
	if err != nil {
		return -1, err
	}
	defer att.Close()
	waitC, errC := r.cli.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return -1, fmt.Errorf("start %s: %w", s.Name, err)
	}
	resize := func(sz TermSize) error {
		return r.cli.ContainerResize(ctx, id, container.ResizeOptions{Height: sz.Rows, Width: sz.Cols})
	}
	stopSignals := forward(o.Signal, func(sig syscall.Signal) {
		_ = r.cli.ContainerKill(context.WithoutCancel(ctx), id, strconv.Itoa(int(sig)))
	})
	defer stopSignals()
	if o.TTY && o.Size.Rows > 0 {
		// As the docker CLI does: the initial size is a resize after start.
		_ = resize(o.Size)
	}
	if err := pump(ctx, att.Conn, att.Reader, att.CloseWrite, o, resize); err != nil {
		return -1, err
	}
	select {
	case w := <-waitC:
		if w.Error != nil {
			return -1, errors.New(w.Error.Message)
		}
		return int(w.StatusCode), nil
	case err := <-errC:
		return -1, err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// oneOffSpec is the Engine API spec of a one-off container of the app spec
// c running o's command: `<prefix>-exec-<version>-<6 hex>`, the role's env,
// volumes and options, without labels or restart policy.
func (r *Runtime) oneOffSpec(c *specv1.Container, o ExecOptions) (*Spec, error) {
	c = cloneContainer(c)
	if c.GetKind() == specv1.ContainerKind_CONTAINER_KIND_ACCESSORY {
		// Kamal's `docker run --rm` of the accessory's image: its network,
		// env and volumes only.
		c.Name = c.GetName() + "-exec-" + randHex(6)
		c.Publish, c.Options, c.Expose, c.Logging = nil, nil, nil, nil
	} else {
		c.Name = prefix(c.GetService(), c.GetRole(), c.GetDestination()) + "-exec-" + c.GetVersion() + "-" + randHex(6)
	}
	c.Labels = nil
	c.Restart = ""
	c.Cmd, c.Args = "", nil
	s, err := r.Translate(c)
	if err != nil {
		return nil, err
	}
	delete(s.Config.Labels, LabelSpec)
	s.Config.Cmd = o.Cmd
	s.Config.Env = append(s.Config.Env, o.Env...)
	s.Config.Tty = o.TTY
	s.Config.OpenStdin = o.Stdin != nil
	s.Config.StdinOnce = o.Stdin != nil
	s.Config.AttachStdin, s.Config.AttachStdout, s.Config.AttachStderr = o.Stdin != nil, true, true
	if o.User != "" {
		s.Config.User = o.User
	}
	if o.WorkDir != "" {
		s.Config.WorkingDir = o.WorkDir
	}
	if o.TTY && o.Size.Rows > 0 {
		s.Host.ConsoleSize = [2]uint{o.Size.Rows, o.Size.Cols}
	}
	return s, nil
}

// signalExec sends sig to an exec's process by the Pid ExecInspect reports
// (a host PID: the agent must share the host's PID namespace, as it does
// when it runs on the host or in a container with --pid host), and to its
// process group when it leads one.
func (r *Runtime) signalExec(execID string, sig syscall.Signal) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in, err := r.cli.ContainerExecInspect(ctx, execID)
	if err != nil || !in.Running || in.Pid <= 0 {
		return
	}
	_ = syscall.Kill(-in.Pid, sig)
	if err := syscall.Kill(in.Pid, sig); err != nil && r.cfg.Logf != nil {
		r.cfg.Logf("signal exec %s (pid %d): %v", execID, in.Pid, err)
	}
}

// forward calls fn for every signal on ch until the returned func is
// called. A nil ch forwards nothing.
func forward(ch <-chan syscall.Signal, fn func(syscall.Signal)) func() {
	if ch == nil {
		return func() {}
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case sig, ok := <-ch:
				if !ok {
					return
				}
				fn(sig)
			case <-stop:
				return
			}
		}
	}()
	return func() { close(stop) }
}

// pump copies stdin to the hijacked connection and its output to
// Stdout/Stderr, forwarding resizes, until the output ends.
func pump(ctx context.Context, conn io.Writer, out io.Reader, closeWrite func() error, o ExecOptions, resize func(TermSize) error) error {
	stdout, stderr := o.Stdout, o.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = stdout
	}
	if o.Stdin != nil {
		go func() {
			_, _ = io.Copy(conn, o.Stdin)
			_ = closeWrite()
		}()
	}
	stopResize := make(chan struct{})
	defer close(stopResize)
	if o.Resize != nil {
		go func() {
			for {
				select {
				case s, ok := <-o.Resize:
					if !ok {
						return
					}
					_ = resize(s)
				case <-stopResize:
					return
				}
			}
		}()
	}
	done := make(chan error, 1)
	go func() {
		var err error
		if o.TTY {
			// Hide out's WriteTo: read as much as has arrived at once.
			_, err = io.CopyBuffer(stdout, struct{ io.Reader }{out}, make([]byte, demuxBuffer))
		} else {
			_, err = demux(stdout, stderr, out)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
