package kctl_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/ctlclient"
)

// `kctl cluster unlock` gives a controller restarted under --autolock the
// key from the admin credentials, or from --key-file; a wrong key unlocks
// nothing and says so.
func TestRun_ClusterUnlock(t *testing.T) {
	tc := controllertest.NewCluster(t, 1, controllertest.WithConfig(func(c *controller.Config) { c.Autolock = true }))
	tc.Kill(0)
	tc.Restart(0)
	controllertest.WaitFor(t, 30*time.Second, "the controller to be locked", func() error {
		_, err := tc.Nodes[0].C.CA()
		if err == nil || !strings.Contains(err.Error(), "locked") {
			return err
		}
		return nil
	})
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "--credentials", tc.AdminPath, "cluster", "unlock", "--key-file", wrong)
	if err == nil || !strings.Contains(out, "not this cluster's unlock key") {
		t.Errorf("cluster unlock --key-file WRONG = %q, %v; want a refusal", out, err)
	}
	out, err = run(t, "--credentials", tc.AdminPath, "cluster", "unlock")
	if err != nil || !strings.Contains(out, "c1 unlocked") {
		t.Fatalf("cluster unlock = %q, %v", out, err)
	}
	if _, err := tc.Nodes[0].C.CA(); err != nil {
		t.Fatalf("CA() after kctl cluster unlock = %v", err)
	}
}

// `kctl cluster unlock-key` shows the unlock key of the admin credentials;
// --rotate prints a new one once, replaces it in the credentials file, and
// a controller restarted under --autolock refuses the old key and is
// unlocked by `kctl cluster unlock` with the new one. `kctl cluster
// data-key rotate` leaves the unlock key as it is.
func TestRun_ClusterUnlockKeyRotate(t *testing.T) {
	tc := controllertest.NewCluster(t, 3, controllertest.WithConfig(func(c *controller.Config) { c.Autolock = true }))
	old := tc.Admin.UnlockKey
	out, err := run(t, "--credentials", tc.AdminPath, "cluster", "unlock-key")
	if err != nil || strings.TrimSpace(out) != old {
		t.Fatalf("cluster unlock-key = %q, %v; want the credentials' unlock key", out, err)
	}
	out, err = run(t, "--credentials", tc.AdminPath, "cluster", "unlock-key", "--rotate")
	if err != nil || !strings.Contains(out, "shown once") || !strings.Contains(out, "c3: has the new key") || strings.Contains(out, old) {
		t.Fatalf("cluster unlock-key --rotate = %q, %v", out, err)
	}
	f, err := ctlclient.LoadFile(tc.AdminPath)
	if err != nil || f.UnlockKey == old || !strings.Contains(out, f.UnlockKey) {
		t.Fatalf("credentials unlock_key after rotation = %q (%v); want the printed new key", f.UnlockKey, err)
	}
	if out, err := run(t, "--credentials", tc.AdminPath, "cluster", "data-key", "rotate"); err != nil || !strings.Contains(out, "data key rotated") {
		t.Fatalf("cluster data-key rotate = %q, %v", out, err)
	}
	tc.Kill(2)
	tc.Restart(2)
	controllertest.WaitFor(t, 30*time.Second, "the restarted controller to be locked", func() error {
		_, err := tc.Nodes[2].C.CA()
		if err == nil || !strings.Contains(err.Error(), "locked") {
			return fmt.Errorf("CA() = %v, want locked", err)
		}
		return nil
	})
	oldFile := filepath.Join(t.TempDir(), "old")
	if err := os.WriteFile(oldFile, []byte(old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "--credentials", tc.AdminPath, "cluster", "unlock", "--key-file", oldFile)
	if err == nil || !strings.Contains(out, "not this cluster's unlock key") {
		t.Errorf("cluster unlock with the old key = %q, %v; want a refusal", out, err)
	}
	if _, err := tc.Nodes[2].C.CA(); err == nil {
		t.Fatal("the old key unlocked the restarted controller")
	}
	out, err = run(t, "--credentials", tc.AdminPath, "cluster", "unlock")
	if err != nil || !strings.Contains(out, "c3 unlocked") {
		t.Fatalf("cluster unlock = %q, %v", out, err)
	}
	if _, err := tc.Nodes[2].C.CA(); err != nil {
		t.Fatalf("CA() after unlock with the new key = %v", err)
	}
}
