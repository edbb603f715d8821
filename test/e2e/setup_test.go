package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2E_SetupAccessoryDestinationSecrets: `kctl setup -d staging` boots an
// accessory and deploys two roles (web behind the proxy, a worker with cmd)
// with the staging overlay and secrets from .kamal/secrets.staging.
func TestE2E_SetupAccessoryDestinationSecrets(t *testing.T) {
	e, p := newDeployEnv(t)
	// The accessory runs the app image (the only image this machine has).
	if out, err := e.kctlIn(p.Dir, "build", "push", "--version", "acc"); err != nil {
		t.Fatalf("build push: %v\n%s", err, out)
	}
	accessory := fmt.Sprintf(`accessories:
  cache:
    image: %s/kctl-e2e/%s:acc
    host: %s
    cmd: serve
    env:
      clear:
        ROLE: cache
      secret:
        - CACHE_PASSWORD
`, p.reg.Addr, p.service, e.agent)
	f, err := os.OpenFile(filepath.Join(p.Dir, "config", "deploy.yml"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(accessory)
	must(t, err)
	must(t, f.Close())
	must(t, os.WriteFile(filepath.Join(p.Dir, "config", "deploy.staging.yml"), []byte("env:\n  clear:\n    GREETING: staging\n"), 0o644))
	common, err := os.ReadFile(filepath.Join(p.Dir, ".kamal", "secrets"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(p.Dir, ".kamal", "secrets.staging"), append(common, []byte("CACHE_PASSWORD=cache-pw-staging\n")...), 0o600))
	must(t, os.Remove(filepath.Join(p.Dir, ".kamal", "secrets"))) // with -d, Kamal reads only secrets.<dest>

	out, err := e.kctlIn(p.Dir, "setup", "-d", "staging", "--version", "v1")
	if err != nil {
		t.Fatalf("setup -d staging: %v", err)
	}
	for _, want := range []string{"boot accessory cache", "boot " + p.service + "-web-staging-v1", "boot " + p.service + "-worker-staging-v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("setup output lacks %q:\n%s", want, out)
		}
	}
	if got, _ := p.get("/env/GREETING"); got != "staging\n" {
		t.Errorf("GREETING = %q, want the staging overlay's value", got)
	}
	if got, _ := p.get("/env/KAMAL_DESTINATION"); got != "staging\n" {
		t.Errorf("KAMAL_DESTINATION = %q, want staging", got)
	}
	if got, _ := p.get("/env/APP_SECRET"); !strings.HasPrefix(got, "s3cret-value-") {
		t.Errorf("APP_SECRET = %q, want the value from .kamal/secrets.staging", got)
	}
	for _, name := range []string{p.service + "-cache", p.service + "-worker-staging-v1", p.service + "-web-staging-v1"} {
		if n := containersNamed(t, engineName(e.agent, name)); len(n) != 1 {
			t.Errorf("containers named %s = %v, want one", name, n)
		}
	}
	env := inspectEnv(t, engineName(e.agent, p.service+"-cache"))
	if env["CACHE_PASSWORD"] != "cache-pw-staging" || env["ROLE"] != "cache" {
		t.Errorf("accessory env = %v, want CACHE_PASSWORD from secrets.staging and ROLE=cache", env)
	}
	if out, err := e.kctlIn(p.Dir, "config", "-d", "staging", "--version", "v1"); err != nil || strings.Contains(out, "cache-pw-staging") {
		t.Errorf("kctl config -d staging leaks a secret or fails: %v\n%s", err, out)
	}
}
