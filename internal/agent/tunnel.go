package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/agent/exec"
)

// errServerExecRefused refuses `kctl server exec` on an agent started
// without --allow-server-exec.
var errServerExecRefused = fmt.Errorf("%w: server exec is not allowed on this host (start the agent with --allow-server-exec)", exec.ErrStreamRefused)

// tunnel serves one operator stream the session asked for: it dials a
// Tunnel on the session's connection, runs the logs or exec the controller
// opens, and ends it when either side goes away (the controller's side
// ending cancels ctx, which kills the remote process).
func (a *Agent) tunnel(ctx context.Context, conn grpc.ClientConnInterface, id string) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := streamv1.NewTunnelServiceClient(conn).Tunnel(ctx)
	if err != nil {
		a.log.Warn("opening a tunnel failed", "id", id, "err", err)
		return
	}
	if err := st.Send(&streamv1.TunnelUp{Msg: &streamv1.TunnelUp_Hello{Hello: &streamv1.TunnelHello{Id: id}}}); err != nil {
		return
	}
	first, err := st.Recv()
	if err != nil {
		return
	}
	open := first.GetOpen()
	out := &outputWriter{st: st}
	fail := a.serveOpen(ctx, cancel, st, open, out)
	if fail != nil {
		_ = out.send(&streamv1.Output{Msg: &streamv1.Output_Failure{Failure: fail}})
	}
	// Half-close and wait for the controller to end the stream, so the
	// last output is not lost to a cancellation.
	_ = st.CloseSend()
	for {
		if _, err := st.Recv(); err != nil {
			return
		}
	}
}

// serveOpen runs the open's logs or exec and reports a failure to send.
func (a *Agent) serveOpen(ctx context.Context, cancel context.CancelFunc, st streamv1.TunnelService_TunnelClient, open *streamv1.Open, out *outputWriter) *streamv1.Failure {
	streamer, _ := a.cfg.Runtime.(exec.Streamer)
	if l := open.GetLogs(); l != nil {
		if streamer == nil {
			return failure(fmt.Errorf("%w: this agent's runtime has no logs", exec.ErrStreamRefused))
		}
		go drain(st, nil, cancel)
		return failure(streamer.StreamLogs(ctx, l, out.stream(false)))
	}
	start := open.GetExec()
	if start == nil {
		return failure(fmt.Errorf("%w: nothing to open", exec.ErrStreamInvalid))
	}
	server := start.GetTarget().GetKind() == streamv1.Target_KIND_SERVER
	run := func(ctx context.Context, sio exec.StreamIO) (int, error) { return streamer.StreamExec(ctx, start, sio) }
	switch {
	case server && !a.cfg.AllowServerExec:
		return failure(errServerExecRefused)
	case server:
		run = func(ctx context.Context, sio exec.StreamIO) (int, error) { return hostExec(ctx, start, sio) }
	case streamer == nil:
		return failure(fmt.Errorf("%w: this agent's runtime has no exec", exec.ErrStreamRefused))
	}
	in := newExecInputs(start.GetInteractive())
	go drain(st, in, cancel)
	a.log.Info("exec started", "caller", open.GetCaller(), "target", start.GetTarget().GetKind().String())
	code, err := run(ctx, in.io(out))
	if err != nil {
		return failure(err)
	}
	a.log.Info("exec finished", "caller", open.GetCaller(), "exit", code)
	if err := out.send(&streamv1.Output{Msg: &streamv1.Output_Exit{Exit: &streamv1.Exit{Code: int32(code)}}}); err != nil {
		return nil
	}
	return nil
}

// failure reports err to the operator with a status code.
func failure(err error) *streamv1.Failure {
	if err == nil {
		return nil
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, exec.ErrStreamNotFound):
		code = codes.NotFound
	case errors.Is(err, exec.ErrStreamInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, exec.ErrStreamRefused):
		code = codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return &streamv1.Failure{Code: uint32(code), Message: err.Error()}
}

// outputWriter sends output on the tunnel, one message per write: gRPC's
// flow control blocks a write while the operator does not read.
type outputWriter struct {
	st streamv1.TunnelService_TunnelClient
	// mu serializes Send (stdout and stderr write concurrently).
	mu sync.Mutex
}

func (w *outputWriter) send(m *streamv1.Output) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st.Send(&streamv1.TunnelUp{Msg: &streamv1.TunnelUp_Output{Output: m}})
}

// stream returns a writer of stdout (or stderr).
func (w *outputWriter) stream(stderr bool) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		m := &streamv1.Output{Msg: &streamv1.Output_Stdout{Stdout: p}}
		if stderr {
			m.Msg = &streamv1.Output_Stderr{Stderr: p}
		}
		if err := w.send(m); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// execInputs turns the controller's inputs into an exec's stdin, resizes
// and signals. Stdin is a pipe: a write waits for the process to read, so
// the tunnel stops receiving (and gRPC flow control pushes back) meanwhile.
type execInputs struct {
	stdinR *io.PipeReader
	stdinW *io.PipeWriter
	resize chan exec.TermSize
	signal chan syscall.Signal
}

func newExecInputs(interactive bool) *execInputs {
	in := &execInputs{resize: make(chan exec.TermSize, 1), signal: make(chan syscall.Signal, 1)}
	if interactive {
		in.stdinR, in.stdinW = io.Pipe()
	}
	return in
}

func (in *execInputs) io(out *outputWriter) exec.StreamIO {
	sio := exec.StreamIO{Stdout: out.stream(false), Stderr: out.stream(true), Resize: in.resize, Signal: in.signal}
	if in.stdinR != nil {
		sio.Stdin = in.stdinR
	}
	return sio
}

// signals maps the signal names kctl sends.
var signals = map[string]syscall.Signal{
	"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"WINCH": syscall.SIGWINCH, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

// drain receives the controller's inputs until the stream ends, then
// cancels the stream's work: the operator or a controller went away.
// Logs have no inputs (in is nil).
func drain(st streamv1.TunnelService_TunnelClient, in *execInputs, cancel context.CancelFunc) {
	defer cancel()
	if in != nil && in.stdinW != nil {
		defer in.stdinW.CloseWithError(io.ErrUnexpectedEOF)
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return
		}
		if in == nil {
			continue
		}
		in.deliver(m.GetInput())
	}
}

// deliver hands one input to the exec; a full resize or signal slot is
// replaced by the newer one, so nothing queues.
func (in *execInputs) deliver(m *streamv1.ExecInput) {
	switch {
	case m.GetStdin() != nil:
		if in.stdinW != nil {
			_, _ = in.stdinW.Write(m.GetStdin())
		}
	case m.GetCloseStdin() != nil:
		if in.stdinW != nil {
			_ = in.stdinW.Close()
		}
	case m.GetResize() != nil:
		sz := exec.TermSize{Rows: uint(m.GetResize().GetRows()), Cols: uint(m.GetResize().GetCols())}
		replace(in.resize, sz)
	case m.GetSignal() != nil:
		if sig, ok := signals[m.GetSignal().GetName()]; ok {
			replace(in.signal, sig)
		}
	}
}

// replace puts v in the one-slot channel ch, dropping an undelivered value.
func replace[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}
