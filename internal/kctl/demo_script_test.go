package kctl

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// TestDemoScript_WaitsForAConnectedAgent: scripts/demo.sh waits until
// `kctl agents` shows its agent connected; "disconnected" must not do.
func TestDemoScript_WaitsForAConnectedAgent(t *testing.T) {
	script, err := os.ReadFile("../../scripts/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	fn := regexp.MustCompile(`(?m)^agent_connected\(\) .*$`).Find(script)
	if fn == nil {
		t.Fatal("scripts/demo.sh defines no agent_connected function")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	for status, want := range map[string]bool{"connected": true, "disconnected": false} {
		var table bytes.Buffer
		header := []string{"NAME", "STATUS", "CONTROLLER", "LAST SEEN", "VERSION"}
		rows := [][]string{{"demo-10", "connected", "c1", "", "v1"}, {"demo-1", status, "c1", "2025-01-01T00:00:00Z", "v1"}}
		if err := printTable(&table, header, rows); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "-c", string(fn)+"\nagent_connected demo-1")
		cmd.Stdin = &table
		got := cmd.Run() == nil
		if got != want {
			t.Errorf("agent_connected demo-1 with status %s = %v, want %v", status, got, want)
		}
	}
}
