package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Proc is a process started by Start.
type Proc struct {
	// Name names the process in logs ("c1", "web-1").
	Name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	// err is cmd.Wait's result, read only after done is closed.
	err error
}

// Start starts cmd (exec.Command(path, args...) with Dir and Env as the
// caller wants) in its own process group, with stdout and stderr in
// <t.TempDir()>/<name>.log. In cleanup it stops the group (Stop) and, if t
// failed, logs the tail of the output.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", name, tail(p.Output(), 4000))
		}
	})
	return p
}

// Pid is the process id, also its process group id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Output is what the process wrote so far (stdout and stderr).
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Exited reports whether the process has exited, and its Wait error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, waits for the process (SIGKILL
// to the group after 10s) and returns its exit error. Stopping an exited
// process returns its exit error again.
func (p *Proc) Stop() error {
	if ok, err := p.Exited(); ok {
		return err
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
	return p.err
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Proc) Kill() {
	if ok, _ := p.Exited(); !ok {
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	}
	<-p.done
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
