package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// serverCode matches the packages kctl must never link: the Raft store, the
// controller and the deploy runner, and what they pull in.
var serverCode = regexp.MustCompile(`hashicorp/raft|bbolt|boltdb|internal/(raftstore|controller|deploy)`)

// TestLinksNoServerCode fails when kctl's dependencies include server code:
// the CLI talks to the controllers over gRPC only.
func TestLinksNoServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		if serverCode.MatchString(pkg) {
			bad = append(bad, pkg)
		}
	}
	if len(bad) > 0 {
		t.Errorf("cmd/kctl links server code:\n  %s\n(client-side code belongs in internal/kctl/... or a shared leaf package)", strings.Join(bad, "\n  "))
	}
}
