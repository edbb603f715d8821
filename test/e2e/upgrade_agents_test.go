package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// kctl agents upgrade moves three agents from build A to build B one at a
// time while the deployed app keeps serving (0 failed requests), through
// the controllers only; every step is audited. A build that exits at start
// is rolled back by the first agent's own supervisor and the upgrade stops
// there, the other agents untouched.
func TestE2E_AgentSelfUpgrade(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(1)
	e.startAgents(cs, 3)
	p := newProject(t, e) // web and worker on the first agent
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	dir := t.TempDir()
	buildB := filepath.Join(dir, "agent-b")
	verB := testenv.TestVersion() + "-b"
	goBuildPkg(t, buildB, "-ldflags", "-X github.com/kctl-dev/kctl/internal/version.Version="+verB, "./cmd/agent")
	buildC := filepath.Join(dir, "agent-c")
	goBuildPkg(t, buildC, "./test/agent-crash")

	l := p.startLoop()
	out, err := e.kctl("agents", "upgrade", "--file", buildB, "--sha256", fileSHA(t, buildB), "--batch", "1")
	ok, failed, last := l.finish()
	if err != nil {
		t.Fatalf("agents upgrade to B: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if failed != 0 || ok == 0 {
		t.Errorf("requests during the upgrade: %d ok, %d failed (last %v)", ok, failed, last)
	}
	as, err := e.agents()
	must(t, err)
	for _, h := range e.hosts {
		if as[h].Version != verB || as[h].Status != "connected" {
			t.Errorf("%s after the upgrade: %+v, want connected on %s", h, as[h], verB)
		}
	}
	audit := e.mustKctl("audit", "-o", "json")
	if n := strings.Count(audit, `"agent upgrade"`); n != 3 {
		t.Errorf("audit has %d agent upgrade entries, want 3:\n%s", n, audit)
	}
	if !strings.Contains(audit, `"blob upload"`) {
		t.Errorf("audit lacks the upload:\n%s", audit)
	}

	// A build that fails at start: the first agent rolls back to B, the
	// upgrade stops before the second.
	out, err = e.kctl("agents", "upgrade", "--file", buildC, "--sha256", fileSHA(t, buildC), "--batch", "1", "--reconnect-timeout", "45s")
	if err == nil {
		t.Fatalf("an upgrade to a binary that exits at start succeeded:\n%s", out)
	}
	if !strings.Contains(err.Error(), "rolled") {
		t.Errorf("the failed upgrade does not say it was rolled back: %v", err)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		as, err := e.agents()
		if err != nil {
			return err
		}
		for _, h := range e.hosts {
			if as[h].Version != verB || as[h].Status != "connected" {
				return fmt.Errorf("%s: %+v, want connected on %s", h, as[h], verB)
			}
		}
		return nil
	})
	audit = e.mustKctl("audit", "-o", "json")
	if n := strings.Count(audit, `"agent upgrade"`); n != 4 {
		t.Errorf("audit has %d agent upgrade entries after the failed one, want 4 (the upgrade stops at the first agent)", n)
	}
	if got, err := p.get("/"); err != nil || got != "v1\n" {
		t.Errorf("the app after both upgrades: %q, %v", got, err)
	}
}

func goBuildPkg(t *testing.T, out string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-o", out}, args...)...)
	cmd.Dir = testenv.ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, b)
	}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
