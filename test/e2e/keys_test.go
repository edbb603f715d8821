package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// TestE2E_UnlockKeyRotationWithAutolock: three controllers started with
// --autolock. `kctl cluster unlock-key` shows the key of the admin
// credentials; `--rotate` prints a new one once and every controller takes
// it; `kctl cluster data-key rotate` re-seals the CA key. A controller
// killed and restarted is locked: the old unlock key is refused, the new
// one (which kctl wrote into its credentials file) unlocks it.
func TestE2E_UnlockKeyRotationWithAutolock(t *testing.T) {
	e := newEnv(t)
	e.controllerArgs = []string{"--autolock"}
	cs := e.startCluster(3)
	f, err := ctlclient.LoadFile(e.creds)
	if err != nil || f.UnlockKey == "" {
		t.Fatalf("admin credentials: %v, unlock_key %q", err, f.UnlockKey)
	}
	old := f.UnlockKey
	for _, c := range cs {
		if _, err := os.Stat(filepath.Join(c.dir, "kek")); !os.IsNotExist(err) {
			t.Fatalf("%s wrote a kek file under --autolock (%v)", c.name, err)
		}
	}
	if out := e.mustKctl("cluster", "unlock-key"); strings.TrimSpace(out) != old {
		t.Fatalf("cluster unlock-key = %q, want the credentials' unlock key", out)
	}
	out := e.mustKctl("cluster", "unlock-key", "--rotate")
	for _, want := range []string{"c1: has the new key", "c2: has the new key", "c3: has the new key", "shown once", "Keep it safe"} {
		if !strings.Contains(out, want) {
			t.Fatalf("cluster unlock-key --rotate = %q, want %q", out, want)
		}
	}
	if f, err = ctlclient.LoadFile(e.creds); err != nil || f.UnlockKey == old || !strings.Contains(out, f.UnlockKey) {
		t.Fatalf("credentials unlock_key after the rotation = %q (%v), want the printed new key", f.UnlockKey, err)
	}
	if out := e.mustKctl("cluster", "data-key", "rotate"); !strings.Contains(out, "data key rotated") {
		t.Fatalf("cluster data-key rotate = %q", out)
	}

	// c2 restarts: locked until it gets the new key.
	c2 := cs[1]
	c2.p.Kill()
	c2.p = e.start("c2-restarted", "controller", "run", "--name", c2.name, "--data-dir", c2.dir, "--listen", c2.api, "--raft-listen", c2.raft, "--heartbeat-interval", "1s", "--autolock")
	only := *f
	only.Controllers = []string{c2.api}
	c2creds := filepath.Join(e.dir, "c2-only.yaml")
	if err := only.Save(c2creds); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 60*time.Second, func() error {
		_, err := e.kctl("--credentials", c2creds, "cluster", "unlock-key")
		if err == nil || !strings.Contains(err.Error(), "locked") {
			return err // not serving yet, or (wrongly) unlocked: reported below
		}
		return nil
	})
	if out, err := e.kctl("--credentials", c2creds, "cluster", "unlock-key"); err == nil {
		t.Fatalf("a restarted --autolock controller showed the key %q: it should be locked", out)
	}
	oldFile := filepath.Join(e.dir, "old-unlock-key")
	if err := os.WriteFile(oldFile, []byte(old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := e.kctl("--credentials", c2creds, "cluster", "unlock", "--key-file", oldFile); err == nil || !strings.Contains(out, "not this cluster's unlock key") {
		t.Fatalf("cluster unlock with the old key = %q, %v; want a refusal", out, err)
	}
	if out := e.mustKctl("--credentials", c2creds, "cluster", "unlock"); !strings.Contains(out, "c2 unlocked") {
		t.Fatalf("cluster unlock with the new key = %q", out)
	}
	if out := e.mustKctl("--credentials", c2creds, "cluster", "unlock-key"); strings.TrimSpace(out) != f.UnlockKey {
		t.Fatalf("unlocked c2's unlock-key = %q, want the new key", out)
	}
	e.waitHealthy(t, 30*time.Second, "c1", "c2", "c3")
}
