// Package testenv gates tests on what the machine provides. Under
// KCTL_E2E=1 (set by `make test` and CI) a missing dependency fails the test
// instead of skipping it, so end-to-end tests never silently skip in CI.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// Strict reports whether missing dependencies must fail tests.
func Strict() bool { return os.Getenv("KCTL_E2E") == "1" }

// Unavailable skips t, or fails it when Strict.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("KCTL_E2E=1 but "+format, args...)
	}
	t.Skipf(format, args...)
}

// Docker returns a client for the local engine, or skips/fails t.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		Unavailable(t, "no Docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		Unavailable(t, "Docker engine unreachable: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Command returns the path of an executable, or skips/fails t.
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not on PATH", name)
	}
	return p
}
