package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// accessoryYML adds accessory db (the test app's image) on the first host.
const accessoryYML = `accessories:
  db:
    image: %[1]s
    host: %[2]s
    env:
      clear:
        DB_CLEAR: plain
      secret:
        - DB_SECRET
`

// TestE2E_AccessoryExec runs `accessory exec` as Kamal does: without
// --reuse a one-off container of the accessory's image with its env (the
// secret from the env file on the host, not the local value), removed
// afterwards; with --reuse in the running accessory container.
func TestE2E_AccessoryExec(t *testing.T) {
	s := newStreamsEnv(t)
	h1 := s.hosts[0]
	image := "localhost:5000/kctl-e2e/" + s.service + ":latest"
	deploy := filepath.Join(s.project, "config", "deploy.yml")
	b, err := os.ReadFile(deploy)
	must(t, err)
	must(t, os.WriteFile(deploy, append(b, fmt.Sprintf(accessoryYML, image, h1)...), 0o644))
	must(t, os.WriteFile(filepath.Join(s.project, ".kamal", "secrets"), []byte("KAMAL_REGISTRY_PASSWORD=x\nDB_SECRET=local-value\n"), 0o600))
	// The env file the accessory's boot leaves on the host.
	envFile := filepath.Join(s.dir, h1, "host", ".kamal", "apps", s.service, "env", "accessories", "db.env")
	must(t, os.MkdirAll(filepath.Dir(envFile), 0o700))
	must(t, os.WriteFile(envFile, []byte("DB_SECRET=from-the-host\n"), 0o600))
	// The running accessory container, as its boot leaves it.
	ctx := context.Background()
	name := engineName(h1, s.service+"-db")
	c, err := s.cli.ContainerCreate(ctx, &container.Config{Image: image, Env: []string{"DB_CLEAR=running"}, Labels: map[string]string{
		"service": s.service + "-db", "kctl.agent": h1,
	}}, nil, nil, nil, name)
	must(t, err)
	must(t, s.cli.ContainerStart(ctx, c.ID, container.StartOptions{}))

	out, errOut, code := s.run(s.creds2, "accessory", "exec", "db", "--raw", "env", "DB_SECRET", "DB_CLEAR", "KAMAL_HOST")
	if code != 0 || strings.TrimSpace(out) != "from-the-host plain "+h1 {
		t.Fatalf("accessory exec (one-off) = %d\n%s%s", code, out, errOut)
	}
	waitFor(t, 5*time.Second, "the one-off accessory container removed", func() error {
		return s.containerNamed(name+"-exec-", false)
	})
	out, errOut, code = s.run(s.creds2, "accessory", "exec", "db", "--reuse", "/app env DB_CLEAR")
	if code != 0 || !strings.Contains(out, "Accessory Host: "+h1) || !strings.Contains(out, "running") {
		t.Fatalf("accessory exec --reuse = %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := s.run(s.creds2, "accessory", "exec", "db", "exit 3"); code != 3 {
		t.Fatalf("accessory exec exit 3 = %d: %s", code, errOut)
	}
}
