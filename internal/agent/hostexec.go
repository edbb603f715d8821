package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"syscall"
	"time"

	"github.com/creack/pty"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/agent/exec"
)

// hostExec runs `kctl server exec` on the agent's host, as the agent's user,
// in a terminal when asked. The process group is killed when ctx ends.
func hostExec(ctx context.Context, start *streamv1.ExecStart, sio exec.StreamIO) (int, error) {
	argv := start.GetCommand()
	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	for _, e := range start.GetEnv() {
		cmd.Env = append(cmd.Env, e.GetKey()+"="+e.GetValue())
	}
	cmd.Cancel = func() error { return killGroup(cmd.Process, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var err error
	stopSignals := func() {}
	if start.GetTty() {
		err = runPTY(cmd, start.GetSize(), sio, &stopSignals)
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = sio.Stdin, sio.Stdout, sio.Stderr
		if err = cmd.Start(); err == nil {
			stopSignals = relaySignals(cmd.Process, sio.Signal)
			err = cmd.Wait()
		}
	}
	stopSignals()
	var ee *osexec.ExitError
	switch {
	case errors.As(err, &ee) && ctx.Err() == nil:
		return exitCode(ee), nil
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case err != nil:
		return -1, fmt.Errorf("%w: %w", exec.ErrStreamInvalid, err)
	}
	return 0, nil
}

// runPTY runs cmd in a new terminal of the given size.
func runPTY(cmd *osexec.Cmd, size *streamv1.TermSize, sio exec.StreamIO, stopSignals *func()) error {
	ws := &pty.Winsize{Rows: uint16(size.GetRows()), Cols: uint16(size.GetCols())}
	f, err := pty.StartWithSize(cmd, ws)
	if err != nil {
		return err
	}
	defer f.Close()
	*stopSignals = relaySignals(cmd.Process, sio.Signal)
	if sio.Stdin != nil {
		go func() { _, _ = io.Copy(f, sio.Stdin) }()
	}
	go func() {
		for sz := range sio.Resize {
			_ = pty.Setsize(f, &pty.Winsize{Rows: uint16(sz.Rows), Cols: uint16(sz.Cols)})
		}
	}()
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(sio.Stdout, f) // ends with EIO once the process exits
		close(copied)
	}()
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	return err
}

// relaySignals forwards signals to the process group until stopped.
func relaySignals(p *os.Process, ch <-chan syscall.Signal) func() {
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				_ = killGroup(p, sig)
			case <-stop:
				return
			}
		}
	}()
	return func() { close(stop) }
}

// killGroup signals p's process group (it leads one: Setpgid or Setsid).
func killGroup(p *os.Process, sig syscall.Signal) error {
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		return p.Signal(sig)
	}
	return nil
}

// exitCode is the shell's view of an exit: 128+signal when killed.
func exitCode(ee *osexec.ExitError) int {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}
