// Package testenv is the shared test kit: what package tests, test/e2e and
// bench/ need beyond the standard library.
//
//   - Gates: Strict, Unavailable, SkipShort, Command, Docker. Under
//     KCTL_E2E=1 (set by `make test` and CI) a missing dependency fails the
//     test instead of skipping it, so end-to-end tests never silently skip
//     in CI.
//   - Waiting: WaitFor and Poll poll a condition with a deadline (never
//     sleep to wait); WaitReady waits for a ready channel.
//   - Loopback: FreePort and FreeAddr.
//   - Binaries: Binaries and Build build packages of the module once per
//     source tree, shared by every test process of a `go test ./...` run,
//     stamped with a version (internal/version).
//   - Processes: Start runs a binary in its own process group with its
//     output in t.TempDir, and stops the group in cleanup.
//   - CLIs: HelpAndVersion checks a daemon's `run --help` and version.
//   - A registry: StartRegistry runs Debian's docker-registry with htpasswd
//     auth on a free loopback port, stopped by pid in cleanup.
//   - A project: NewProject writes a Kamal project (config/deploy.yml,
//     .kamal/secrets) on disk; DeployYML renders a deploy.yml for the test
//     app behind the kamal-proxy stand-in.
//
// Docker objects (images, containers, networks) are made and removed by
// internal/agent/docker/dockertest, which builds on this package.
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

// SkipShort skips a heavy test (real binaries, real Docker) under -short,
// unless Strict.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() && !Strict() {
		t.Skip("heavy test: set KCTL_E2E=1 or run without -short")
	}
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
