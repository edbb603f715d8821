package agent

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// startController runs a one-node cluster and returns its address and an
// agent token.
func startController(t *testing.T) (string, string) {
	t.Helper()
	tc := controllertest.NewCluster(t, 1)
	return tc.Nodes[0].API, tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour)
}

func TestAgent_RenewsItsCertificateAndKeepsWorking(t *testing.T) {
	addr, tok := startController(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := Config{Name: "web-1", DataDir: dir, Controllers: []string{addr}, Token: tok, Runtime: &FakeRuntime{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	old := pki.Serial(a.Leaf())
	if err := a.renew(ctx); err != nil {
		t.Fatalf("renew = %v", err)
	}
	if got := pki.Serial(a.Leaf()); got == old {
		t.Fatalf("serial after renewal = %s, want a new one", got)
	}
	// A restart loads the renewed certificate (no token needed) and
	// connects with it.
	cfg.Token = ""
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New after renewal = %v", err)
	}
	if got, want := pki.Serial(b.Leaf()), pki.Serial(a.Leaf()); got != want {
		t.Fatalf("stored serial = %s, want the renewed %s", got, want)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	testenv.WaitReady(t, 10*time.Second, "a session with the renewed certificate", b.SessionEstablished(), done)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
}
