package selfupgrade

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Supervise runs the installed current binary as a child with args (the
// agent's own command line) until ctx ends, restarting it when it asks
// (ExitRestart) and rolling back a binary on trial that exits or does not
// connect within TrialTimeout. It returns runSelf when the packaged binary
// should run the agent itself: nothing is installed, a rollback reached the
// packaged binary, or the package was upgraded since.
func Supervise(ctx context.Context, dataDir string, args []string, logf func(format string, a ...any)) (runSelf bool, err error) {
	for {
		st, err := Load(dataDir)
		if err != nil {
			return false, err
		}
		if st.Current == "" {
			return true, nil
		}
		pkg, err := os.Executable()
		if err != nil {
			return false, err
		}
		if pd, err := FileDigest(pkg); err != nil || pd != st.Packaged {
			logf("the packaged agent binary changed since the self-upgrade (a package upgrade wins): running it")
			return true, drop(dataDir)
		}
		code, err := runChild(ctx, dataDir, st, pkg, args, logf)
		switch {
		case ctx.Err() != nil:
			return false, nil
		case code == ExitRestart:
			continue // a newer binary was installed
		}
		now, lerr := Load(dataDir)
		if lerr == nil && now.Current == st.Current && now.Trial {
			back, rerr := Rollback(dataDir)
			if rerr != nil {
				return false, rerr
			}
			to := "the packaged binary"
			if back.Current != "" {
				to = back.Current[:12]
			}
			logf("the upgraded agent %s failed on trial (%v, exit code %d): rolled back to %s", st.Current[:12], err, code, to)
			continue
		}
		logf("the agent %s exited (%v, exit code %d); restarting it", st.Current[:12], err, code)
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(2 * time.Second):
		}
	}
}

// runChild runs one child to its end and returns its exit code. A child on
// trial that has not committed within TrialTimeout is stopped.
func runChild(ctx context.Context, dataDir string, st State, pkg string, args []string, logf func(string, ...any)) (int, error) {
	cmd := exec.Command(Binary(dataDir, st.Current), args...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+pkg)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return -1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var trial <-chan time.Time
	if st.Trial {
		t := time.NewTimer(TrialTimeout)
		defer t.Stop()
		trial = t.C
	}
	var err error
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			err = <-done
			waiting = false
		case <-trial:
			trial = nil
			if now, lerr := Load(dataDir); lerr == nil && now.Current == st.Current && now.Trial {
				logf("the upgraded agent %s did not connect within %s: stopping it", st.Current[:12], TrialTimeout)
				_ = cmd.Process.Signal(syscall.SIGTERM)
			}
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), err
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// drop forgets the self-upgrade: the state and every installed binary.
func drop(dataDir string) error {
	ents, _ := os.ReadDir(binDir(dataDir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "kctl-agent-") {
			_ = os.Remove(filepath.Join(binDir(dataDir), e.Name()))
		}
	}
	return Save(dataDir, State{})
}

// RunningDigest is the digest of the installed binary this process runs,
// or "" when it runs the packaged one.
func RunningDigest() string {
	if os.Getenv(ChildEnv) == "" {
		return ""
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	d, _ := strings.CutPrefix(filepath.Base(exe), "kctl-agent-")
	return d
}
