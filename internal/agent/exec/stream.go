package exec

import (
	"context"
	"errors"
	"io"
	"syscall"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

// Errors a Streamer returns for conditions the operator can act on; the
// agent's tunnel reports them with a matching status code.
var (
	// ErrStreamNotFound: no such container.
	ErrStreamNotFound = errors.New("exec: no such container")
	// ErrStreamInvalid: the request cannot be carried out as given.
	ErrStreamInvalid = errors.New("exec: invalid stream request")
	// ErrStreamRefused: the agent's configuration forbids it.
	ErrStreamRefused = errors.New("exec: refused by the agent")
)

// Streamer is a Runtime's optional capability, found by type assertion: the
// byte streams of `kctl app logs` and `kctl app exec` (proto/kctl/stream).
// Both return when ctx ends; an exec's process is killed then.
type Streamer interface {
	// StreamLogs writes the target container's logs to w until they end
	// or, when following, until ctx ends.
	StreamLogs(ctx context.Context, req *streamv1.LogsRequest, w io.Writer) error
	// StreamExec runs start's command and returns its exit code.
	StreamExec(ctx context.Context, start *streamv1.ExecStart, sio StreamIO) (int, error)
}

// TermSize is a terminal's size.
type TermSize struct {
	Rows, Cols uint
}

// StreamIO connects an exec to its operator. Stdin is nil unless the exec
// is interactive; Stderr receives the terminal's output too when there is
// none (TTY merges them into Stdout). Resize and Signal may be nil.
type StreamIO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Resize         <-chan TermSize
	Signal         <-chan syscall.Signal
}
