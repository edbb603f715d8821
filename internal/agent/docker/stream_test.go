package docker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a poller.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogsAndExec(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1")
	h.mustDo(opEnsureNetwork(h.network))
	if res := h.bootWorker("v1"); !res.GetOk() {
		t.Fatalf("boot = %q", res.GetError())
	}
	ctx := context.Background()
	id, err := h.rt.CurrentContainer(ctx, h.service, "worker", "")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("logs", func(t *testing.T) {
		var out bytes.Buffer
		// The app logs "listening" just after it starts.
		dockertest.WaitFor(t, 10*time.Second, func() error {
			out.Reset()
			if err := h.rt.Logs(ctx, id, docker.LogsOptions{Lines: 100, Grep: "listening"}, &out); err != nil {
				return err
			}
			if got := strings.TrimSpace(out.String()); got != "app v1: listening on :80" {
				return fmt.Errorf("Logs(grep listening) = %q, want the listening line", got)
			}
			return nil
		})
		out.Reset()
		if err := h.rt.Logs(ctx, id, docker.LogsOptions{Lines: 1, Timestamps: true}, &out); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "T") || !strings.HasSuffix(lines[0], "listening on :80") {
			t.Errorf("Logs(lines 1, timestamps) = %q, want one timestamped line", out.String())
		}
	})

	t.Run("follow", func(t *testing.T) {
		fctx, cancel := context.WithCancel(ctx)
		var out lockedBuffer
		done := make(chan error, 1)
		go func() { done <- h.rt.Logs(fctx, id, docker.LogsOptions{Follow: true, Since: "1h"}, &out) }()
		// Produce a new log line: the app logs on shutdown, so restart it.
		dockertest.WaitFor(t, 10*time.Second, func() error {
			if !strings.Contains(out.String(), "listening") {
				return io.ErrNoProgress
			}
			return nil
		})
		timeout := 1
		if err := h.cli.ContainerRestart(ctx, id, containerStopOptions(timeout)); err != nil {
			t.Fatal(err)
		}
		dockertest.WaitFor(t, 10*time.Second, func() error {
			if !strings.Contains(out.String(), "shutting down") {
				return io.ErrNoProgress
			}
			return nil
		})
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Logs(follow) after cancel = %v, want nil", err)
		}
	})

	t.Run("exec reuse", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code, err := h.rt.Exec(ctx, id, docker.ExecOptions{Cmd: []string{"/app", "exit", "3"}, Stdout: &stdout, Stderr: &stderr})
		if err != nil || code != 3 || strings.TrimSpace(stderr.String()) != "exiting 3" {
			t.Errorf("Exec(exit 3) = %d, %v, stderr %q; want 3, nil, exiting 3", code, err, stderr.String())
		}
		stdout.Reset()
		code, err = h.rt.Exec(ctx, id, docker.ExecOptions{Cmd: []string{"/app", "cat"}, Stdin: strings.NewReader("hello\n"), Stdout: &stdout})
		if err != nil || code != 0 || stdout.String() != "hello\n" {
			t.Errorf("Exec(cat) = %d, %v, %q; want 0, nil, hello", code, err, stdout.String())
		}
	})

	t.Run("exec tty resize", func(t *testing.T) {
		var out lockedBuffer
		resize := make(chan docker.TermSize, 1)
		resize <- docker.TermSize{Rows: 33, Cols: 101}
		code, err := h.rt.Exec(ctx, id, docker.ExecOptions{Cmd: []string{"/app", "winsize", "33x101"}, TTY: true, Size: docker.TermSize{Rows: 20, Cols: 80}, Stdout: &out, Resize: resize})
		if err != nil || code != 0 || strings.TrimSpace(out.String()) != "33x101" {
			t.Errorf("Exec(winsize, tty) = %d, %v, %q; want 0, nil, 33x101", code, err, out.String())
		}
	})

	t.Run("run once", func(t *testing.T) {
		var out bytes.Buffer
		c := h.app("worker", "v1")
		code, err := h.rt.RunOnce(ctx, c, docker.ExecOptions{Cmd: []string{"echo", "from", "a", "fresh", "container"}, Stdout: &out})
		if err != nil || code != 0 || strings.TrimSpace(out.String()) != "from a fresh container" {
			t.Errorf("RunOnce(echo) = %d, %v, %q", code, err, out.String())
		}
		var tty lockedBuffer
		code, err = h.rt.RunOnce(ctx, c, docker.ExecOptions{Cmd: []string{"winsize", "24x90"}, TTY: true, Size: docker.TermSize{Rows: 24, Cols: 90}, Stdout: &tty})
		if err != nil || code != 0 || strings.TrimSpace(tty.String()) != "24x90" {
			t.Errorf("RunOnce(winsize, tty) = %d, %v, %q; want 24x90", code, err, tty.String())
		}
		if names := h.containerNames(); len(names) != 1 {
			t.Errorf("containers after RunOnce = %v, want only the worker", names)
		}
	})
}
