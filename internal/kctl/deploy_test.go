package kctl_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/ctlclient"
)

// TestRun_DeployToDisconnectedAgent: a controller that refuses a deploy
// because a host's agent is enrolled but not connected answered; kctl says
// so and how to check, not that no controller is reachable.
func TestRun_DeployToDisconnectedAgent(t *testing.T) {
	creds := startController(t)
	tok, err := run(t, "--credentials", creds, "token", "create", "--role", "agent")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ctlclient.LoadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Enrolled (joined), never run: not connected.
	if _, err := agent.New(ctx, agent.Config{Name: "web-1", DataDir: t.TempDir(), Controllers: f.Controllers,
		Token: strings.TrimSpace(tok), Runtime: &agent.FakeRuntime{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := os.MkdirAll("config", 0o755); err != nil {
		t.Fatal(err)
	}
	const yml = "service: app\nimage: team/app\nservers:\n  - web-1\nregistry:\n  server: localhost:5555\nbuilder:\n  arch: amd64\n"
	if err := os.WriteFile("config/deploy.yml", []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, "--credentials", creds, "deploy", "--skip-push", "--version", "v1", "-H")
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
