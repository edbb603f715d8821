package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// follower is a running `kctl app logs -f`.
type follower struct {
	cmd    *exec.Cmd
	got    *lines
	stderr strings.Builder
	done   chan error
}

func (s *streamsEnv) follow(t *testing.T, creds string) *follower {
	f := &follower{cmd: s.command(creds, "app", "logs", "-f"), done: make(chan error, 1)}
	stdout, err := f.cmd.StdoutPipe()
	must(t, err)
	f.cmd.Stderr = &f.stderr
	must(t, f.cmd.Start())
	t.Cleanup(func() { _ = f.cmd.Process.Kill() })
	f.got = collect(stdout)
	go func() { f.done <- f.cmd.Wait() }()
	return f
}

// TestE2E_FollowEndsOnControllerFailover: the controller holding the
// agents' sessions is killed (SIGKILL) mid-follow; a `logs -f` relayed
// through the other controller and one connected to the killed controller
// both end within seconds, non-zero, with a message naming the cut.
func TestE2E_FollowEndsOnControllerFailover(t *testing.T) {
	s := newStreamsEnv(t)
	h1, h2 := s.hosts[0], s.hosts[1]
	relayed := s.follow(t, s.creds2)
	direct := s.follow(t, s.credsFor(t, s.creds, s.cs[0].api))
	for _, f := range []*follower{relayed, direct} {
		waitFor(t, 20*time.Second, "followed lines of both hosts", func() error {
			if err := f.got.has(h1+" | ", "listening"); err != nil {
				return err
			}
			return f.got.has(h2+" | ", "listening")
		})
	}

	s.cs[0].p.Kill()

	for name, f := range map[string]*follower{"relayed": relayed, "direct": direct} {
		select {
		case err := <-f.done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("%s logs -f ended with %v, want a non-zero exit", name, err)
			}
			msg := f.stderr.String()
			if name == "relayed" && !strings.Contains(msg, "was cut") || !strings.Contains(msg, "went away") || strings.Contains(msg, "no controller reachable") {
				t.Fatalf("%s logs -f: unclear message %q", name, msg)
			}
			t.Logf("%s logs -f: exit %d: %s", name, ee.ExitCode(), strings.TrimSpace(msg))
		case <-time.After(15 * time.Second):
			t.Fatalf("%s logs -f still running 15s after the controller died", name)
		}
	}
}

// TestE2E_FrozenOperatorEndsExec: a kctl that stops answering without
// closing its connection (SIGSTOP: as a network drop looks to the
// controller) ends its remote exec within the controller's keepalive bound
// (docs/streams.md: 5s, asserted with slack).
func TestE2E_FrozenOperatorEndsExec(t *testing.T) {
	s := newStreamsEnv(t)
	h1 := s.hosts[0]
	cmd := s.command(s.creds2, "app", "exec", "--reuse", "-h", h1, "/app sleep 779s")
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, 20*time.Second, "the exec running", func() error { return s.processIn(s.app[h1], "779s", true) })
	must(t, cmd.Process.Signal(syscall.SIGSTOP))
	waitFor(t, 10*time.Second, "the exec killed", func() error { return s.processIn(s.app[h1], "779s", false) })
}
