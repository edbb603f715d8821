package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// `accessory reboot db` replaces the accessory's container and keeps its
// data directory: a file written into the directory's host path before the
// reboot is there after, mounted into the new container at the same place.
// The reboot and the details run through deploy.yml's aliases, with Kamal's
// argument passing (`kctl dbreboot db` → `kctl accessory reboot db`).
func TestE2E_LifecycleAccessoryRebootKeepsDataAndAliases(t *testing.T) {
	e, p := newDeployEnv(t)
	// The accessory runs the app image (the only image this machine has).
	if out, err := e.kctlIn(p.Dir, "build", "push", "--version", "acc"); err != nil {
		t.Fatalf("build push: %v\n%s", err, out)
	}
	extra := fmt.Sprintf(`accessories:
  db:
    image: %s/kctl-e2e/%s:acc
    host: %s
    cmd: serve
    directories:
      - data:/data
aliases:
  dbreboot: accessory reboot
  dbdetails: accessory details
`, p.reg.Addr, p.service, e.agent)
	f, err := os.OpenFile(filepath.Join(p.Dir, "config", "deploy.yml"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(extra)
	must(t, err)
	must(t, f.Close())

	if out, err := e.kctlIn(p.Dir, "accessory", "boot", "db"); err != nil {
		t.Fatalf("accessory boot db: %v\n%s", err, out)
	}
	name := engineName(e.agent, p.service+"-db")
	before := dataMount(t, name)
	marker := filepath.Join(before.source, "kept.txt")
	must(t, os.WriteFile(marker, []byte("still here\n"), 0o644))

	if out, err := e.kctlIn(p.Dir, "dbreboot", "db"); err != nil {
		t.Fatalf("kctl dbreboot db (alias of accessory reboot): %v\n%s", err, out)
	}
	after := dataMount(t, name)
	if after.id == before.id {
		t.Errorf("accessory reboot kept container %s; want a new one", before.id)
	}
	if after.source != before.source {
		t.Errorf("after the reboot /data is %s, want the same host path %s", after.source, before.source)
	}
	if got, err := os.ReadFile(marker); err != nil || string(got) != "still here\n" {
		t.Errorf("after accessory reboot, %s = %q, %v; want the file kept", marker, got, err)
	}

	out, err := e.kctlIn(p.Dir, "dbdetails", "db")
	if err != nil || !strings.Contains(out, after.id[:12]) {
		t.Errorf("kctl dbdetails db (alias of accessory details) = %q, %v; want the new container %s", out, err, after.id[:12])
	}
	if out, err := e.kctlIn(p.Dir, "accessory", "remove", "db", "-y"); err != nil {
		t.Errorf("accessory remove db -y: %v\n%s", err, out)
	}
}

type mount struct{ id, source string }

// dataMount is the container's id and the host path mounted at /data.
func dataMount(t *testing.T, name string) mount {
	t.Helper()
	in, err := testenv.Docker(t).ContainerInspect(context.Background(), name)
	must(t, err)
	for _, m := range in.Mounts {
		if m.Destination == "/data" {
			return mount{id: in.ID, source: m.Source}
		}
	}
	t.Fatalf("%s mounts nothing at /data: %+v", name, in.Mounts)
	return mount{}
}
