package docker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// harness is one agent on the shared engine with its own names: proxy
// container, proxy volume, network, service and image repository all carry
// a per-test prefix.
type harness struct {
	t         testing.TB
	cli       *client.Client
	rt        *docker.Runtime
	prefix    string
	service   string
	network   string
	repo      string
	proxyRef  string
	proxyPort int
	dataDir   string
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	cli := testenv.Docker(t)
	p := dockertest.Prefix(t)
	h := &harness{
		t: t, cli: cli, prefix: p,
		service: p + "app",
		network: p + "-kamal",
		repo:    "kctl-test/" + p + "app",
		dataDir: t.TempDir(),
	}
	dockertest.CleanupContainers(t, cli, p, []string{h.network}, []string{p + "-proxy-config"})
	t.Cleanup(func() { dockertest.RemoveImages(cli, h.repo) })
	rt, err := docker.New(docker.Config{
		DataDir: h.dataDir, Client: cli, AgentName: p,
		ProxyName: p + "-proxy", ProxyVolume: p + "-proxy-config",
		PollInterval: 100 * time.Millisecond,
		Logf:         t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.rt = rt
	return h
}

func (h *harness) buildApp(versions ...string) {
	h.t.Helper()
	for _, v := range versions {
		dockertest.BuildAppImage(h.t, h.cli, h.repo+":"+v, map[string]string{"service": h.service, "kctl.test.version": v})
	}
}

func (h *harness) do(op *agentv1.Operation) *agentv1.Result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := h.rt.Do(ctx, op)
	if err != nil {
		h.t.Fatalf("Do(%T) error: %v", op.GetOp(), err)
	}
	return res
}

func (h *harness) mustDo(op *agentv1.Operation) *agentv1.Result {
	h.t.Helper()
	res := h.do(op)
	if !res.GetOk() {
		h.t.Fatalf("Do(%T) = error %q (detail %q), want ok", op.GetOp(), res.GetError(), res.GetDetail())
	}
	return res
}

func (h *harness) proxyContainer() *specv1.Container {
	return &specv1.Container{
		Kind:    specv1.ContainerKind_CONTAINER_KIND_PROXY,
		Name:    "kamal-proxy",
		Image:   h.proxyRef,
		Restart: "unless-stopped",
		Network: h.network,
		Volumes: []string{
			"kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy",
			"$PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config",
		},
		Publish: []string{fmt.Sprintf("127.0.0.1:%d:80", h.proxyPort)},
		Logging: &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m"}}},
		Args:    []string{"kamal-proxy", "run"},
	}
}

// bootProxy builds the stand-in image and boots it on a free loopback port.
func (h *harness) bootProxy() {
	h.t.Helper()
	h.proxyRef = dockertest.BuildProxyImage(h.t, h.cli, "kctl-test/"+h.prefix+"-kamal-proxy")
	h.proxyPort = testenv.FreePort(h.t)
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: h.network}}})
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootProxy{BootProxy: &agentv1.BootProxy{Boot: &specv1.ProxyBoot{Container: h.proxyContainer()}}}})
}

// app is the container spec Kamal would run for role web, version v.
func (h *harness) app(role, v string, extraEnv ...*specv1.KeyValue) *specv1.Container {
	name := h.service + "-" + role + "-" + v
	env := []*specv1.KeyValue{
		{Key: "KAMAL_CONTAINER_NAME", Value: name},
		{Key: "KAMAL_VERSION", Value: v},
		{Key: "KAMAL_HOST", Value: "127.0.0.1"},
	}
	return &specv1.Container{
		Kind:      specv1.ContainerKind_CONTAINER_KIND_APP,
		Name:      name,
		Image:     h.repo + ":" + v,
		Restart:   "unless-stopped",
		Network:   h.network,
		Hostname:  "127.0.0.1-" + h.prefix + "abcdef",
		Env:       append(env, extraEnv...),
		EnvFile:   ".kamal/apps/" + h.service + "/env/roles/" + role + ".env",
		SecretEnv: []*specv1.KeyValue{{Key: "SECRET_KEY_BASE", Value: "s3cr3t-" + v}},
		Logging:   &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m"}}},
		Labels: []*specv1.KeyValue{
			{Key: "service", Value: h.service},
			{Key: "role", Value: role},
			{Key: "destination", Bare: true},
		},
		Service: h.service, Role: role, Version: v,
	}
}

func (h *harness) proxyDeploy(role string, flags ...string) *specv1.ProxyDeploy {
	return &specv1.ProxyDeploy{
		Service: h.service + "-" + role,
		AppPort: 80,
		Flags: append([]string{`--deploy-timeout="5s"`, `--drain-timeout="5s"`,
			`--health-check-interval="100ms"`, `--buffer-requests`, `--buffer-responses`,
			`--log-request-header="Cache-Control"`}, flags...),
		DeployTimeout: 5, DrainTimeout: 5,
	}
}

func (h *harness) boot(c *specv1.Container, p *specv1.ProxyDeploy) *agentv1.Result {
	h.t.Helper()
	return h.do(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{
		Container: c, Proxy: p, Stop: &specv1.StopPolicy{Timeout: 10, HasTimeout: true},
	}}})
}

// get fetches path through the proxy's published loopback port.
func (h *harness) get(path string) (int, string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", h.proxyPort, path))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// state returns the container's state ("" when absent).
func (h *harness) state(name string) string {
	in, err := h.cli.ContainerInspect(context.Background(), name)
	if err != nil {
		return ""
	}
	return in.State.Status
}

func (h *harness) wantServes(version string) {
	h.t.Helper()
	testenv.WaitFor(h.t, 10*time.Second, func() error {
		code, body, err := h.get("/version")
		if err != nil || code != 200 || body != version {
			return fmt.Errorf("GET /version = %d %q %v, want 200 %q", code, body, err, version)
		}
		return nil
	})
}

func opEnsureNetwork(name string) *agentv1.Operation {
	return &agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: name}}}
}

func containerStopOptions(timeout int) container.StopOptions {
	return container.StopOptions{Timeout: &timeout}
}
