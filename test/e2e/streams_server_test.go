package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// TestE2E_ServerExecAndDetach: server exec is refused by an agent started
// without --allow-server-exec and for a deployer; an admin on an agent
// that allows it runs the command on the host and gets its exit code, and
// the audit shows it. app exec --detach excludes -i and --reuse.
func TestE2E_ServerExecAndDetach(t *testing.T) {
	s := newStreamsEnvArgs(t, [][]string{{"--allow-server-exec"}})
	allowed, refused := s.hosts[0], s.hosts[1]

	// Refused by the agent that does not allow it: a clear error.
	if out, errOut, code := s.run(s.creds2, "server", "exec", "-h", refused, "echo no"); code == 0 || !strings.Contains(out+errOut, "--allow-server-exec") {
		t.Fatalf("server exec on %s (not allowed) = %d: %s%s, want a refusal naming --allow-server-exec", refused, code, out, errOut)
	}

	// Refused for a deployer even where it is allowed.
	tok := strings.TrimSpace(s.mustKctl("token", "create", "--role", "operator", "--operator-role", "deployer", "--name", "deployer1"))
	deployer := filepath.Join(s.dir, "deployer.yaml")
	if _, err := s.kctl("--credentials", deployer, "login", "--controller", s.cs[1].api, "--token", tok); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := s.run(deployer, "server", "exec", "-h", allowed, "echo no"); code == 0 || !strings.Contains(strings.ToLower(errOut), "permission") {
		t.Fatalf("deployer server exec = %d: %s, want a permission error", code, errOut)
	}

	// An admin on the agent that allows it: runs on the host, exit code
	// passed through.
	out, errOut, code := s.run(s.creds2, "server", "exec", "-h", allowed, "echo from-the-host; exit 4")
	if code != 4 || !strings.Contains(out, "from-the-host") {
		t.Fatalf("admin server exec = %d\n%s%s, want exit 4 and the output", code, out, errOut)
	}
	// The exec's end is audited as the stream ends, after kctl has its
	// exit code: poll.
	testenv.WaitFor(t, 15*time.Second, func() error {
		audit := s.mustKctl("audit", "-o", "json")
		if !strings.Contains(audit, "exit 4") || !strings.Contains(audit, "in: host") || !strings.Contains(audit, "from-the-host") {
			return fmt.Errorf("audit lacks the server exec:\n%s", audit)
		}
		return nil
	})

	// --detach excludes -i and --reuse (Kamal).
	for _, flag := range []string{"-i", "--reuse"} {
		if _, errOut, code := s.run(s.creds2, "app", "exec", "--detach", flag, "-h", allowed, "/app echo x"); code == 0 || !strings.Contains(errOut, "--detach cannot be combined") {
			t.Fatalf("app exec --detach %s = %d: %s, want a refusal", flag, code, errOut)
		}
	}
}
