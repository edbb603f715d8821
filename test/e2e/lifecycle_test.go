package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// Kamal's day-two commands through the agents: details, maintenance with a
// message and live again through the proxy, a proxy reboot that keeps the
// routes, a viewer refused `app stop`, the audit of each action, and
// `remove -y` leaving nothing of the service.
func TestE2E_LifecycleMaintenanceRebootRemove(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(1)
	e.startAgent(cs)
	p := newProject(t, e)
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy v1: %v\n%s", err, out)
	}

	out, err := e.kctlIn(p.Dir, "details")
	if err != nil {
		t.Fatalf("details: %v", err)
	}
	for _, want := range []string{"Proxy Host: " + e.agent, "App Host: " + e.agent, p.service + "-web-v1", p.service + "-worker-v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("details lacks %q:\n%s", want, out)
		}
	}
	if out, err := e.kctlIn(p.Dir, "app", "version"); err != nil || !strings.Contains(out, "App Host: "+e.agent+"\nv1\n") {
		t.Errorf("app version = %q, %v; want v1 on %s", out, err, e.agent)
	}

	if out, err := e.kctlIn(p.Dir, "app", "maintenance", "--message", "Back at noon"); err != nil {
		t.Fatalf("app maintenance: %v\n%s", err, out)
	}
	body, err := p.get("/")
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(body, "Back at noon") {
		t.Errorf("GET / in maintenance = %q, %v; want 503 with the message", body, err)
	}
	if out, err := e.kctlIn(p.Dir, "details"); err != nil || !strings.Contains(out, "web on "+e.agent+`: maintenance "Back at noon" (app maintenance by`) {
		t.Errorf("details in maintenance = %q, %v; want the desired state with its message", out, err)
	}
	if out, err := e.kctlIn(p.Dir, "app", "live"); err != nil {
		t.Fatalf("app live: %v\n%s", err, out)
	}
	if got, err := p.get("/"); err != nil || got != "v1\n" {
		t.Errorf("GET / after app live = %q, %v; want v1", got, err)
	}

	if out, err := e.kctlIn(p.Dir, "proxy", "reboot", "-y"); err != nil {
		t.Fatalf("proxy reboot: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		_, err := p.get("/")
		return err
	})

	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "operator", "--name", "vera", "--operator-role", "viewer"))
	veraCreds := filepath.Join(e.dir, "vera.yaml")
	if out, err := e.runBin(30*time.Second, "kctl", "--credentials", veraCreds, "login", "--controller", cs[0].api, "--token", tok); err != nil {
		t.Fatalf("vera login: %v\n%s", err, out)
	}
	viewer := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(e.bin, "kctl"), append([]string{"--credentials", veraCreds}, args...)...)
		cmd.Dir = p.Dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := viewer("app", "stop"); err == nil || !strings.Contains(strings.ToLower(out), "permission") {
		t.Errorf("viewer app stop = %q, %v; want a permission error", out, err)
	}
	if out, err := viewer("app", "details"); err != nil || !strings.Contains(out, p.service+"-web-v1") {
		t.Errorf("viewer app details = %q, %v; want the containers", out, err)
	}

	out, err = e.kctlIn(p.Dir, "audit", "--service", p.service, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []map[string]string
	must(t, json.Unmarshal([]byte(out), &entries))
	seen := map[string]bool{}
	ended := map[string]bool{}
	for _, en := range entries {
		if en["host"] == e.agent && en["result"] == "succeeded" {
			seen[en["action"]] = true
		}
		if en["host"] == "" && en["result"] == "succeeded" {
			ended[en["action"]] = true
		}
	}
	for _, want := range []string{"Maintenance mode", "Live mode", "Rebooted proxy"} {
		if !seen[want] {
			t.Errorf("audit lacks a successful %q on %s: %s", want, e.agent, out)
		}
	}
	for _, want := range []string{"deploy finished", "app maintenance finished", "app live finished", "proxy reboot finished"} {
		if !ended[want] {
			t.Errorf("audit lacks %q: %s", want, out)
		}
	}

	appDir := filepath.Join(e.dir, e.agent, "host", ".kamal", "apps", p.service)
	if _, err := os.Stat(appDir); err != nil {
		t.Errorf("before remove, the app directory: %v", err)
	}
	if out, err := e.kctlIn(p.Dir, "remove", "-y"); err != nil {
		t.Fatalf("remove -y: %v\n%s", err, out)
	}
	cli := dockertest.Client(t)
	ctx := context.Background()
	left, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "service="+p.service))})
	must(t, err)
	if len(left) > 0 {
		t.Errorf("containers of %s left after remove: %d (%v)", p.service, len(left), left[0].Names)
	}
	imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "service="+p.service))})
	must(t, err)
	if len(imgs) > 0 {
		t.Errorf("images of %s left after remove: %v", p.service, imgs[0].RepoTags)
	}
	if _, err := os.Stat(appDir); !os.IsNotExist(err) {
		t.Errorf("after remove, the app directory %s: %v; want it gone", appDir, err)
	}
	if got, err := p.get("/"); err == nil {
		t.Errorf("GET / after remove = %q; want no route (the proxy is gone)", got)
	}
}
