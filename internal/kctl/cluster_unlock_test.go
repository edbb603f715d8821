package kctl_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
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
