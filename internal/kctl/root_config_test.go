package kctl

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/kamalconfig"
)

func runConfigKctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(&out, &out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

const configTestDeploy = `service: app
image: dhh/app
servers:
  web: [1.1.1.1]
  job:
    hosts: [1.1.1.2]
    cmd: bin/jobs
proxy:
  host: app.example.com
registry:
  username: dhh
  password: [KAMAL_REGISTRY_PASSWORD]
builder:
  arch: amd64
env:
  secret: [RAILS_MASTER_KEY]
`

func TestConfigExplainAndRedacted(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll("config", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("config/deploy.yml", []byte(configTestDeploy), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(".kamal", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(".kamal/secrets", []byte("RAILS_MASTER_KEY=topsecret-value\nKAMAL_REGISTRY_PASSWORD=pw-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runConfigKctl(t, "config", "--explain", "--version", "v1", "-o", "json")
	if err != nil {
		t.Fatal(err, out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got["image"] != "dhh/app:v1" || got["primary_role"] != "web" {
		t.Errorf("explain: %s", out)
	}
	pd := got["roles"].(map[string]any)["web"].(map[string]any)["proxy_deploy"].([]any)
	if pd[5] != "app-web" || pd[6] != `--target="TARGET:80"` {
		t.Errorf("proxy deploy: %v", pd)
	}
	for _, format := range []string{"yaml", "json"} {
		out, err = runConfigKctl(t, "config", "--version", "v1", "-o", format)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "topsecret") || strings.Contains(out, "pw-secret") {
			t.Fatalf("config output leaks a secret:\n%s", out)
		}
		if !strings.Contains(out, "app-web-v1") || !strings.Contains(out, "KAMAL_REGISTRY_PASSWORD") {
			t.Errorf("config output misses detail:\n%s", out)
		}
	}
	if err := os.WriteFile("config/deploy.yml", []byte(configTestDeploy+"traefik: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runConfigKctl(t, "config", "--explain", "-o", "json")
	if err == nil || !strings.Contains(out, `"error": "Kamal::ConfigurationError: unknown key: traefik"`) {
		t.Errorf("refusal: %v\n%s", err, out)
	}
}

func TestInitAndDocs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := runConfigKctl(t, "init"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"config/deploy.yml", ".kamal/secrets", ".kamal/hooks/pre-deploy.sample"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("init did not write %s", p)
		}
	}
	// The starter file names kctl's commands as they are.
	if b, err := os.ReadFile("config/deploy.yml"); err != nil || !strings.Contains(string(b), "(kctl agents)") || strings.Contains(string(b), "kctl agent list") {
		t.Errorf("init's deploy.yml = %v, want it to point at `kctl agents`:\n%s", err, b)
	}
	// The starter file is a valid configuration once its secrets exist.
	if err := os.WriteFile(".kamal/secrets", []byte("KAMAL_REGISTRY_PASSWORD=x\nRAILS_MASTER_KEY=y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runConfigKctl(t, "config", "--explain", "--version", "v1", "-o", "json"); err != nil {
		t.Fatalf("starter config refused: %v\n%s", err, out)
	}
	out, err := runConfigKctl(t, "docs", "proxy")
	if err != nil || !strings.Contains(out, "app_port") {
		t.Errorf("docs proxy: %v %s", err, out)
	}
	if _, err := runConfigKctl(t, "docs", "nope"); err == nil {
		t.Error("unknown section accepted")
	}
}

func TestSecretsCommands(t *testing.T) {
	out, err := runConfigKctl(t, "secrets", "fetch", "--adapter", "test", "--from", "V/I", "A")
	if err != nil || strings.TrimSpace(out) != `\{\"V/I/A\":\"A/I/V\"\}` {
		t.Errorf("fetch: %v %q", err, out)
	}
	out, err = runConfigKctl(t, "secrets", "extract", "A", `{"V/I/A":"val"}`)
	if err != nil || strings.TrimSpace(out) != "val" {
		t.Errorf("extract: %v %q", err, out)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	_ = os.MkdirAll(".kamal", 0o755)
	_ = os.WriteFile(".kamal/secrets", []byte("B=2\nA=1\n"), 0o600)
	out, err = runConfigKctl(t, "secrets", "print")
	if err != nil || out != "A=1\nB=2\n" {
		t.Errorf("print: %v %q", err, out)
	}
}

func TestSecretsPathFromConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	_ = os.MkdirAll("config", 0o755)
	_ = os.MkdirAll("vault", 0o755)
	if err := os.WriteFile("config/deploy.yml", []byte(configTestDeploy+"secrets_path: vault/s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile("vault/s", []byte("RAILS_MASTER_KEY=k\nKAMAL_REGISTRY_PASSWORD=p\n"), 0o600)
	opts, _, err := (&configProjectFlags{configFile: "config/deploy.yml", version: "1"}).options()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := kamalconfig.Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := cfg.RegistryAuth()
	if err != nil || auth.GetPassword() != "p" {
		t.Fatalf("registry auth from secrets_path: %v", err)
	}
}
