package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const setupToken = "KCTL1-" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + "-abcdefghijklmnopqrstuvwxyz234567"

// agent setup fills in the packaged environment file from flags and a
// token on stdin: the keys it owns are replaced, every other line stays,
// and the file is 0600.
func TestSetup_WritesEnvFileKeepingOtherLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.env")
	orig := "# comment\nKCTL_NAME=\nKCTL_CONTROLLERS=\nKCTL_TOKEN=\nKCTL_AGENT_ARGS=--shared-engine\nHTTPS_PROXY=http://proxy:3128\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Run(t.Context(), []string{"setup", "--name", "web-1", "--controller", "10.0.0.1:7443,10.0.0.2:7443", "--env-file", path, "--no-start"},
		&out, &out, nil)
	if err == nil {
		t.Fatal("setup without a token on stdin succeeded")
	}
	a := setupArgs{name: "web-1", controllers: "10.0.0.1:7443,10.0.0.2:7443", envFile: path, noStart: true}
	if err := a.run(strings.NewReader(setupToken+"\n"), &out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := "# comment\nKCTL_NAME=web-1\nKCTL_CONTROLLERS=10.0.0.1:7443,10.0.0.2:7443\nKCTL_TOKEN=" + setupToken +
		"\nKCTL_AGENT_ARGS=--shared-engine\nHTTPS_PROXY=http://proxy:3128\n"
	if string(b) != want {
		t.Errorf("env file:\n%s\nwant:\n%s", b, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// A malformed token is refused before anything is written.
	a.name = "web-2"
	if err := a.run(strings.NewReader("nope\n"), &out); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("malformed token: %v", err)
	}
	if b2, _ := os.ReadFile(path); string(b2) != want {
		t.Errorf("a refused setup changed the file:\n%s", b2)
	}
}
