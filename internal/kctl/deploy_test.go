package kctl_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/agent/exec"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// TestRun_DeployToDisconnectedAgent: a controller that refuses a deploy
// because a host's agent is enrolled but not connected answered; kctl says
// so and how to check, not that no controller is reachable.
func TestRun_DeployToDisconnectedAgent(t *testing.T) {
	creds := startController(t)
	enroll(t, creds, "web-1", false) // enrolled (joined), never run: not connected
	writeProject(t)
	_, err := run(t, "--credentials", creds, "deploy", "--skip-push", "--version", "v1", "-H")
	if err == nil {
		t.Fatal("deploy to a disconnected agent succeeded")
	}
	for _, want := range []string{"the agent of web-1 is not connected", "kctl agents"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("deploy error = %q, want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "no controller reachable") {
		t.Errorf("deploy error = %q, want no claim that no controller is reachable", err)
	}
}

// TestRun_LockWaitBehindAManualLock: --lock-wait does not wait behind a
// lock taken by hand, which kctl learns from the typed detail of the
// controller's answer.
func TestRun_LockWaitBehindAManualLock(t *testing.T) {
	creds := startController(t)
	enroll(t, creds, "web-1", true)
	writeProject(t)
	if _, err := run(t, "--credentials", creds, "lock", "acquire", "-m", "db migration"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := run(t, "--credentials", creds, "deploy", "--skip-push", "--version", "v1", "-H", "--lock-wait", "--lock-wait-interval", "1h")
	if err == nil || !strings.Contains(err.Error(), "deploy lock held manually, not waiting") || !strings.Contains(err.Error(), "db migration") {
		t.Fatalf("deploy --lock-wait behind a manual lock = %v, want it refused at once, naming the lock", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("deploy --lock-wait took %s, want no wait", d)
	}
}

// enroll joins an agent named name to the cluster of creds, and runs it
// (connected) when connect is set.
func enroll(t *testing.T, creds, name string, connect bool) {
	t.Helper()
	enrollWith(t, creds, name, connect, &agent.FakeRuntime{})
}

// enrollWith is enroll with the agent's runtime.
func enrollWith(t *testing.T, creds, name string, connect bool, rt exec.Runtime) {
	t.Helper()
	tok, err := run(t, "--credentials", creds, "token", "create", "--role", "agent")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ctlclient.LoadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	jctx, jcancel := context.WithTimeout(ctx, 30*time.Second)
	defer jcancel()
	a, err := agent.New(jctx, agent.Config{Name: name, DataDir: t.TempDir(), Controllers: f.Controllers,
		Token: strings.TrimSpace(tok), Runtime: rt, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !connect {
		return
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitReady(t, 20*time.Second, "the agent's session", a.SessionEstablished(), done)
	// The controllers record the session a moment later.
	testenv.WaitFor(t, 20*time.Second, func() error {
		out, err := run(t, "--credentials", creds, "agents")
		if err != nil || !strings.Contains(out, name+"   connected") {
			return fmt.Errorf("kctl agents = %q, %v; want %s connected", out, err, name)
		}
		return nil
	})
}

// writeProject writes a one-host Kamal project in a new working directory.
func writeProject(t *testing.T) {
	t.Helper()
	t.Chdir(t.TempDir())
	if err := os.MkdirAll("config", 0o755); err != nil {
		t.Fatal(err)
	}
	const yml = "service: app\nimage: team/app\nservers:\n  - web-1\nregistry:\n  server: localhost:5555\nbuilder:\n  arch: amd64\n"
	if err := os.WriteFile("config/deploy.yml", []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
}
