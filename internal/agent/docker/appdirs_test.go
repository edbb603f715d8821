package docker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// `app remove`'s last step removes the service's (and only its) app
// directory and kamal-proxy apps-config directory, and refuses names that
// would reach outside them.
func TestAppControl_RemoveDirectory(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{cfg: Config{DataDir: dir}}
	mk := func(rel string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := []string{mk(".kamal/apps/app-staging/env/roles"), mk(".kamal/proxy/apps-config/app-staging/tls")}
	kept := []string{mk(".kamal/apps/app/env/roles"), mk(".kamal/apps/other-staging"), mk(".kamal/proxy/apps-config/app")}
	err := r.AppControl(context.Background(), &agentv1.AppControl{Action: agentv1.AppControl_ACTION_REMOVE_DIRECTORY, Service: "app", Destination: "staging", Role: "web"})
	if err != nil {
		t.Fatalf("AppControl(REMOVE_DIRECTORY) = %v", err)
	}
	for _, p := range gone {
		if _, err := os.Stat(filepath.Dir(p)); !os.IsNotExist(err) {
			t.Errorf("%s still exists after app remove (%v)", filepath.Dir(p), err)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(filepath.Join(p, "f")); err != nil {
			t.Errorf("another service's %s was touched: %v", p, err)
		}
	}
	for _, svc := range []string{"", "..", "a/../../x"} {
		err := r.AppControl(context.Background(), &agentv1.AppControl{Action: agentv1.AppControl_ACTION_REMOVE_DIRECTORY, Service: svc})
		if !errors.Is(err, ErrBadOperation) {
			t.Errorf("AppControl(REMOVE_DIRECTORY, service %q) = %v, want ErrBadOperation", svc, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".kamal", "apps")); err != nil {
		t.Errorf("the apps directory itself went: %v", err)
	}
}
