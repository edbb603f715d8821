package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// Kamal's production names on an engine: the proxy container and its state
// volume (an agent without --shared-engine uses exactly these).
const (
	prodProxy       = "kamal-proxy"
	prodProxyVolume = "kamal-proxy-config"
)

// TestE2E_ProductionNames deploys with Kamal's production naming: the agent
// runs without --shared-engine, so the proxy is the container `kamal-proxy`
// (volume `kamal-proxy-config`) and the app containers are
// `<service>-<role>-<version>`, looked up without an agent filter. During the
// v1→v2 deploy both web containers run under those names beside
// `kamal-proxy`; the proxy routes the app with no failed request; after it,
// v1 is stopped and v2 serves.
//
// The test touches only what it creates: its service name has a random
// suffix (every app container starts with it, removed in cleanup), and it
// removes `kamal-proxy` and `kamal-proxy-config` only because neither
// existed when it started. If either already exists (a real Kamal or kctl
// proxy on this engine, or a leftover of an interrupted run: its image is
// kctl-e2e/proxy-…), the test refuses to run: under KCTL_E2E=1 (CI, `make
// test`) it fails with that message, otherwise it skips saying so. The
// shared `kamal` network is created if missing and left in place, as Kamal
// leaves it (other tests' containers use it).
func TestE2E_ProductionNames(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	requireNoProductionProxy(t, cli)
	t.Cleanup(func() { removeProductionProxy(t, cli) }) // after the agent stopped
	e.production = true
	e.startAgent(e.startCluster(1))
	p := newProject(t, e)

	out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1")
	if err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	if !strings.Contains(out, "Finished all in") {
		t.Errorf("deploy v1 output lacks the summary:\n%s", out)
	}
	web1, worker1 := p.service+"-web-v1", p.service+"-worker-v1"
	wantRunning(t, cli, prodProxy, web1, worker1)
	if got, err := p.get("/"); err != nil || got != "v1\n" {
		t.Fatalf("GET / through kamal-proxy after v1 = %q, %v; want v1", got, err)
	}

	// v2 boots slowly, so the deploy is caught with both versions running.
	p.slowStart(t, "3s")
	l := p.startLoop()
	id, err := e.kctlIn(p.Dir, "deploy", "--version", "v2", "--detach")
	if err != nil {
		t.Fatalf("deploy v2: %v", err)
	}
	web2 := p.service + "-web-v2"
	testenv.WaitFor(t, 60*time.Second, func() error { // docker ps during the deploy
		names := running(t, cli)
		for _, n := range []string{prodProxy, web1, web2} {
			if !slices.Contains(names, n) {
				return fmt.Errorf("docker ps lacks %s: %v", n, names)
			}
		}
		return nil
	})
	if out, err := e.kctlIn(p.Dir, "deploys", "watch", strings.TrimSpace(id)); err != nil {
		t.Fatalf("deploy v2: %v\n%s", err, out)
	}
	ok, failed, last := l.finish()
	if failed != 0 || ok == 0 {
		t.Errorf("requests through kamal-proxy across v1→v2: %d ok, %d failed (last: %v); want zero failures", ok, failed, last)
	}
	if got, err := p.get("/"); err != nil || got != "v2\n" {
		t.Errorf("GET / through kamal-proxy after v2 = %q, %v; want v2", got, err)
	}
	wantRunning(t, cli, prodProxy, web2, p.service+"-worker-v2")
	if names := running(t, cli); slices.Contains(names, web1) {
		t.Errorf("%s still runs after v2 took over: %v", web1, names)
	}
	// No shared-engine names: nothing prefixed with the agent's name.
	if names := containersNamed(t, e.agent+"."); len(names) != 0 {
		t.Errorf("containers with the agent's --shared-engine prefix: %v", names)
	}
	if names := containersNamed(t, prodProxy+"-"); slices.Contains(names, prodProxy+"-"+e.agent) {
		t.Errorf("the agent ran a per-agent proxy %s-%s, want %s", prodProxy, e.agent, prodProxy)
	}
}

// requireNoProductionProxy refuses to run (fail under KCTL_E2E=1, else
// skip) when `kamal-proxy` or its volume already exists on the engine:
// the test would take over a proxy it did not create.
func requireNoProductionProxy(t *testing.T, cli *client.Client) {
	t.Helper()
	ctx := context.Background()
	if in, err := cli.ContainerInspect(ctx, prodProxy); err == nil {
		testenv.Unavailable(t, "a %s container this test did not create exists on the engine (image %s, created %s): "+
			"the production-naming test would take it over, so it refuses to run. If it is a leftover of this test "+
			"(image kctl-e2e/proxy-…), remove it: docker rm -f %s; docker volume rm %s",
			prodProxy, in.Config.Image, in.Created, prodProxy, prodProxyVolume)
	}
	if _, err := cli.VolumeInspect(ctx, prodProxyVolume); err == nil {
		testenv.Unavailable(t, "a %s volume this test did not create exists on the engine: the production-naming test "+
			"would hand its proxy state to a new kamal-proxy, so it refuses to run. If it is a leftover of this test, "+
			"remove it: docker volume rm %s", prodProxyVolume, prodProxyVolume)
	}
}

// removeProductionProxy removes the `kamal-proxy` container and volume the
// test created (neither existed when it started), checking the container
// runs the test's proxy stand-in image.
func removeProductionProxy(t *testing.T, cli *client.Client) {
	ctx := context.Background()
	if in, err := cli.ContainerInspect(ctx, prodProxy); err == nil {
		if !strings.HasPrefix(in.Config.Image, "kctl-e2e/proxy-") {
			t.Errorf("%s runs image %s, not this test's stand-in: left in place", prodProxy, in.Config.Image)
			return
		}
		if err := cli.ContainerRemove(ctx, prodProxy, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("remove %s: %v", prodProxy, err)
		}
	}
	if err := cli.VolumeRemove(ctx, prodProxyVolume, true); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("remove volume %s: %v", prodProxyVolume, err)
	}
}

// running lists the names of the running containers (docker ps).
func running(t *testing.T, cli *client.Client) []string {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("status", "running"))})
	must(t, err)
	var names []string
	for _, c := range list {
		for _, n := range c.Names {
			names = append(names, strings.TrimPrefix(n, "/"))
		}
	}
	return names
}

// wantRunning fails t unless every name is a running container.
func wantRunning(t *testing.T, cli *client.Client, names ...string) {
	t.Helper()
	ps := running(t, cli)
	for _, n := range names {
		if !slices.Contains(ps, n) {
			t.Errorf("docker ps lacks %s", n)
		}
	}
}
