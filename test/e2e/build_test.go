package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestE2E_RegistryBuildDeliverPrune(t *testing.T) {
	e, p := newDeployEnv(t)
	if out, err := e.kctlIn(p.Dir, "registry", "login"); err != nil || !strings.Contains(out, "Logged in to "+p.reg.Addr) {
		t.Fatalf("registry login = %q, %v", out, err)
	}
	out, err := e.kctlIn(p.Dir, "build", "deliver", "--version", "v1")
	if err != nil || !strings.Contains(out, e.agent) || !strings.Contains(out, "pulled") {
		t.Fatalf("build deliver = %q, %v; want the host to report the pull", out, err)
	}
	if out, err := e.kctlIn(p.Dir, "deploy", "--skip-push", "--version", "v1"); err != nil {
		t.Fatalf("deploy --skip-push after deliver: %v\n%s", err, out)
	}
	if out, err := e.kctlIn(p.Dir, "prune", "all"); err != nil || !strings.Contains(out, "pruned") {
		t.Errorf("prune all = %q, %v", out, err)
	}
	// A wrong registry password: a one-line refusal that never shows it.
	secrets := filepath.Join(p.Dir, ".kamal", "secrets")
	must(t, os.WriteFile(secrets, []byte("KAMAL_REGISTRY_PASSWORD=wrong-password-xyz\nAPP_SECRET=x\n"), 0o600))
	_, err = e.kctlIn(p.Dir, "registry", "login")
	if err == nil || strings.Contains(err.Error(), "wrong-password-xyz") || !strings.Contains(err.Error(), "registry login to "+p.reg.Addr) {
		t.Errorf("registry login with a wrong password: %v", err)
	}
	_, err = e.kctlIn(p.Dir, "build", "pull", "--version", "v1")
	if err == nil || strings.Contains(err.Error(), "wrong-password-xyz") {
		t.Errorf("build pull with a wrong password: %v", err)
	}
}
