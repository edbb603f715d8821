package kctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/kctl/explain"
)

// Streams (logs, exec) go kctl → any controller → the agent's controller →
// the agent (docs/streams.md). They are not bounded by --timeout: they last
// until the remote side ends or kctl is interrupted.

// streamTarget is one host's process a stream is about.
type streamTarget struct {
	host   string
	kind   string // App, Accessory, Proxy: Kamal's "<kind> Host: h" header
	target *streamv1.Target
	// container is a one-off exec's spec (app exec without --reuse).
	container *specv1.Container
}

// key tells targets apart: a host runs several roles.
func (t streamTarget) key() string {
	return t.host + "/" + t.target.GetRole() + "/" + t.target.GetName()
}

// streamCut is an error after a stream began, or the relay's answer: it is
// shown as is, never retried on another controller (that would repeat
// output or the command). It does not unwrap to its status on purpose:
// ctlclient.CallConn would take an Unavailable for an unreachable
// controller and try the next one.
type streamCut struct{ err error }

func (e *streamCut) Error() string { return e.err.Error() }

// streamCall runs fn on whichever controller answers, with no overall
// deadline. fn calls began once output arrived.
func (g *globals) streamCall(ctx context.Context, fn func(ctx context.Context, c streamv1.StreamServiceClient, began func()) error) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	err = cl.CallConn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		started := false
		err := fn(ctx, streamv1.NewStreamServiceClient(cc), func() { started = true })
		if err != nil && (started || strings.HasPrefix(status.Convert(err).Message(), "relay: ")) {
			return &streamCut{err}
		}
		return err
	})
	var cut *streamCut
	if errors.As(err, &cut) {
		return explainCut(cut.err)
	}
	return explain.Explain(err)
}

// streamError is a stream's error as shown; it wraps the status.
type streamError struct {
	msg string
	err error
}

func (e *streamError) Error() string { return e.msg }
func (e *streamError) Unwrap() error { return e.err }

// explainCut says what a broken stream means.
func explainCut(err error) error {
	st := status.Convert(err)
	msg := strings.TrimPrefix(st.Message(), "relay: ")
	switch st.Code() {
	case codes.Unavailable, codes.Canceled, codes.Internal:
		msg += " (a controller or the agent went away, e.g. a controller failover: run the command again)"
	case codes.PermissionDenied:
		msg = "permission denied: " + msg
	}
	return &streamError{msg: msg, err: err}
}

// logsStream streams one host's logs to stdout (and stderr).
func (g *globals) logsStream(ctx context.Context, req *streamv1.LogsRequest, stdout, stderr io.Writer) error {
	return g.streamCall(ctx, func(ctx context.Context, c streamv1.StreamServiceClient, began func()) error {
		st, err := c.Logs(ctx, req)
		if err != nil {
			return err
		}
		for {
			out, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			began()
			if err := writeOutput(out, stdout, stderr); err != nil {
				return err
			}
		}
	})
}

// writeOutput writes one output message.
func writeOutput(out *streamv1.Output, stdout, stderr io.Writer) error {
	var err error
	switch {
	case out.GetStdout() != nil:
		_, err = stdout.Write(out.GetStdout())
	case out.GetStderr() != nil:
		_, err = stderr.Write(out.GetStderr())
	}
	return err
}

// eachHost runs fn for every target at once, each writing to its own
// spool file, then prints them in order under Kamal's "<Kind> Host: h"
// header (none with raw). A host that failed prints its error.
func eachHost(ctx context.Context, w io.Writer, targets []streamTarget, raw bool, fn func(ctx context.Context, t streamTarget, out io.Writer) error) error {
	if len(targets) == 1 {
		return oneHost(ctx, w, targets[0], raw, fn)
	}
	type result struct {
		f   *os.File
		err error
	}
	res := make([]result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		f, err := os.CreateTemp("", "kctl-stream-*")
		if err != nil {
			return err
		}
		os.Remove(f.Name()) // spooled, never left behind
		defer f.Close()
		res[i].f = f
		wg.Go(func() { res[i].err = fn(ctx, t, f) })
	}
	wg.Wait()
	// The caller may not do this at all: say so once.
	if c := status.Code(res[0].err); c == codes.PermissionDenied || c == codes.Unauthenticated {
		return res[0].err
	}
	var failed []string
	for i, t := range targets {
		if !raw {
			fmt.Fprintf(w, "%s Host: %s\n", t.kind, t.host)
		}
		f := res[i].f
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		n, err := io.Copy(w, f)
		if err != nil {
			return err
		}
		if e := res[i].err; e != nil {
			fmt.Fprintf(w, "%s\n", e)
			failed = append(failed, t.host)
		}
		if !raw {
			if n > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed on %d of %d hosts: %s", len(failed), len(targets), strings.Join(failed, ", "))
	}
	return nil
}

// oneHost is eachHost for one target: its output streams to w as it
// arrives (no spool, and no wait for the end), under the header, which is
// written with the first byte.
func oneHost(ctx context.Context, w io.Writer, t streamTarget, raw bool, fn func(ctx context.Context, t streamTarget, out io.Writer) error) error {
	hw := &headerWriter{w: w}
	if !raw {
		hw.header = fmt.Sprintf("%s Host: %s\n", t.kind, t.host)
	}
	err := fn(ctx, t, hw)
	if c := status.Code(err); hw.n == 0 && (c == codes.PermissionDenied || c == codes.Unauthenticated) {
		return err // the caller may not do this at all
	}
	if _, werr := hw.Write(nil); werr != nil {
		return werr
	}
	if err != nil {
		fmt.Fprintf(w, "%s\n", err)
	}
	if !raw {
		if hw.n > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	if err != nil {
		return fmt.Errorf("failed on 1 of 1 hosts: %s", t.host)
	}
	return nil
}

// headerWriter writes header before the first write (a nil write writes
// just the header) and counts the bytes written after it.
type headerWriter struct {
	w      io.Writer
	header string
	n      int64
}

func (h *headerWriter) Write(p []byte) (int, error) {
	if h.header != "" {
		if _, err := io.WriteString(h.w, h.header); err != nil {
			return 0, err
		}
		h.header = ""
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := h.w.Write(p)
	h.n += int64(n)
	return n, err
}

// linePrefixer writes whole lines to w, each prefixed, under mu: the
// merged output of several hosts followed at once.
type linePrefixer struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    bytes.Buffer
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := l.buf.Next(i + 1)
		l.mu.Lock()
		_, err := fmt.Fprintf(l.w, "%s%s", l.prefix, line)
		l.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush writes a last unterminated line.
func (l *linePrefixer) flush() {
	if l.buf.Len() > 0 {
		l.mu.Lock()
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf.Bytes())
		l.mu.Unlock()
		l.buf.Reset()
	}
}

// dashes lets every flag be spelled with underscores too, as Thor accepts
// (--skip_timestamps, --grep_options).
func dashes(c *cobra.Command) {
	c.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
	})
}
