package docker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
)

func (h *harness) containerNames() []string {
	list, err := h.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "service="+h.service))})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, c := range list {
		out = append(out, strings.TrimPrefix(c.Names[0], "/")+":"+c.State)
	}
	sort.Strings(out)
	return out
}

func (h *harness) imageTags() []string {
	list, err := h.cli.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", h.repo))})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, im := range list {
		for _, t := range im.RepoTags {
			out = append(out, strings.TrimPrefix(t, h.repo+":"))
		}
	}
	sort.Strings(out)
	return out
}

// bootWorker boots a role without a proxy (readiness polling).
func (h *harness) bootWorker(v string, extra ...*specv1.KeyValue) *agentv1.Result {
	h.t.Helper()
	return h.do(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{
		Container: h.app("worker", v, extra...),
		Readiness: &specv1.Readiness{DeployTimeout: 5},
		Stop:      &specv1.StopPolicy{Timeout: 5, HasTimeout: true},
	}}})
}

func TestPrune_RetainsLikeKamal(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v0", "v1", "v2", "v3", "v4")
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: h.network}}})
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		if res := h.bootWorker(v); !res.GetOk() {
			t.Fatalf("boot %s = %q", v, res.GetError())
		}
	}
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_TagLatest{TagLatest: &agentv1.TagLatest{Repository: h.repo, Version: "v4", Tag: "latest"}}})
	got := h.containerNames()
	want := []string{h.service + "-worker-v1:exited", h.service + "-worker-v2:exited", h.service + "-worker-v3:exited", h.service + "-worker-v4:running"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("containers before prune = %v, want %v", got, want)
	}
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_Prune{Prune: &agentv1.Prune{
		Service: h.service, Retain: 2, Containers: true, Images: true, KeepTags: []string{"latest"}, Repository: h.repo,
	}}})
	got = h.containerNames()
	want = want[1:]
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("containers after prune = %v, want %v", got, want)
	}
	if got, want := h.imageTags(), []string{"latest", "v2", "v3", "v4"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("image tags after prune = %v, want %v", got, want)
	}
	// Rollback window: v2 is still bootable from its local image.
	if res := h.bootWorker("v2"); !res.GetOk() {
		t.Fatalf("rollback to v2 = %q", res.GetError())
	}
	res := h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_ListVersions{ListVersions: &agentv1.ListVersions{Service: h.service, Role: "worker"}}})
	gotVersions := slices.Sorted(slices.Values(res.GetVersions()))
	if want := []string{"v2", "v3", "v4"}; fmt.Sprint(gotVersions) != fmt.Sprint(want) {
		t.Errorf("ListVersions = %v, want %v", gotVersions, want)
	}
	if got := h.state(h.service + "-worker-v4"); got != "exited" {
		t.Errorf("v4 after rollback = %q, want exited", got)
	}
}

func TestBootApp_RollbackRenamesChangedContainer(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1", "v2")
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: h.network}}})
	for _, v := range []string{"v1", "v2"} {
		if res := h.bootWorker(v); !res.GetOk() {
			t.Fatalf("boot %s = %q", v, res.GetError())
		}
	}
	// Rolling back with a changed config (new secret) renames the old v1
	// container `_replaced_<16 hex>` and runs a new one, as Kamal does.
	c := h.app("worker", "v1")
	c.SecretEnv[0].Value = "rotated"
	res := h.do(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: c, Readiness: &specv1.Readiness{DeployTimeout: 5}, Rollback: true}}})
	if !res.GetOk() {
		t.Fatalf("rollback = %q", res.GetError())
	}
	names := h.containerNames()
	var replaced int
	for _, n := range names {
		if strings.HasPrefix(n, h.service+"-worker-v1_replaced_") {
			replaced++
			hex := strings.TrimSuffix(strings.TrimPrefix(n, h.service+"-worker-v1_replaced_"), ":exited")
			if len(hex) != 16 {
				t.Errorf("replaced suffix %q, want 16 hex", hex)
			}
		}
	}
	if replaced != 1 || !slices.Contains(names, h.service+"-worker-v1:running") || !slices.Contains(names, h.service+"-worker-v2:exited") {
		t.Errorf("containers = %v, want v1 running, one v1_replaced_, v2 exited", names)
	}
}

func TestStopStale(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1", "v2")
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: h.network}}})
	h.bootWorker("v1")
	h.bootWorker("v2")
	// An interrupted deploy left v1 running again.
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_AppControl{AppControl: &agentv1.AppControl{Action: agentv1.AppControl_ACTION_START, Service: h.service, Role: "worker", Version: "v1"}}})
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_StopStale{StopStale: &agentv1.StopStale{Service: h.service, Role: "worker", Version: "v2", Stop: &specv1.StopPolicy{Timeout: 1, HasTimeout: true}}}})
	if got := h.state(h.service + "-worker-v1"); got != "exited" {
		t.Errorf("v1 = %q, want exited", got)
	}
	if got := h.state(h.service + "-worker-v2"); got != "running" {
		t.Errorf("v2 = %q, want running", got)
	}
	facts := h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_GatherFacts{GatherFacts: &agentv1.GatherFacts{}}}).GetFacts()
	if facts.GetDockerVersion() == "" || facts.GetArch() == "" {
		t.Errorf("facts = %v, want docker version and arch", facts)
	}
	var seen int
	for _, c := range facts.GetContainers() {
		if c.GetLabels()["service"] != h.service {
			t.Errorf("facts include foreign container %s (%v)", c.GetName(), c.GetLabels())
		}
		seen++
	}
	if seen != 2 {
		t.Errorf("facts containers = %d, want 2", seen)
	}
}

func TestBadInput_NothingHalfStarted(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1")
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: h.network}}})

	// refused boots c and wants it refused with an error containing want,
	// leaving no container behind.
	refused := func(t *testing.T, c *specv1.Container, want string) {
		t.Helper()
		res := h.do(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: c}}})
		if res.GetOk() || !strings.Contains(res.GetError(), want) {
			t.Errorf("boot = ok %v error %q, want an error containing %q", res.GetOk(), res.GetError(), want)
		}
		if n := h.containerNames(); len(n) != 0 {
			t.Errorf("containers after refused boot = %v, want none", n)
		}
	}
	t.Run("unknown option", func(t *testing.T) {
		c := h.app("worker", "v1")
		c.Options = []*specv1.Option{{Name: "memory", Value: "64m"}, {Name: "frobnicate", Value: "yes"}}
		refused(t, c, "--frobnicate")
	})
	t.Run("missing image", func(t *testing.T) {
		refused(t, h.app("worker", "v9"), "image not present")
	})
	t.Run("port taken", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c := h.app("worker", "v1")
		c.Options = []*specv1.Option{{Name: "publish", Value: l.Addr().String() + ":80"}}
		refused(t, c, "address already in use")
	})
}

func TestPullImage_ThroughRegistryWithCredentials(t *testing.T) {
	h := newHarness(t)
	reg := dockertest.StartRegistry(t)
	h.buildApp("v1")
	remote := reg.Addr + "/" + h.prefix + "/app:v1"
	dockertest.Push(t, h.cli, reg, h.repo+":v1", remote)
	dockertest.RemoveImage(h.cli, remote)

	auth := &specv1.RegistryAuth{Server: reg.Addr, Username: reg.User, Password: "wrong"}
	res := h.do(&agentv1.Operation{Op: &agentv1.Operation_PullImage{PullImage: &agentv1.PullImage{Image: remote, Auth: auth, Service: h.service}}})
	if res.GetOk() || !strings.Contains(res.GetError(), "refused the credentials") {
		t.Errorf("pull with a wrong password = ok %v %q, want refused credentials", res.GetOk(), res.GetError())
	}
	if strings.Contains(res.GetError(), "wrong") {
		t.Errorf("error %q leaks the password", res.GetError())
	}
	res = h.do(&agentv1.Operation{Op: &agentv1.Operation_PullImage{PullImage: &agentv1.PullImage{Image: reg.Addr + "/" + h.prefix + "/app:nope", Auth: &specv1.RegistryAuth{Server: reg.Addr, Username: reg.User, Password: reg.Password}}}})
	if res.GetOk() || !strings.Contains(res.GetError(), "image not present") {
		t.Errorf("pull of a missing tag = ok %v %q, want image not present", res.GetOk(), res.GetError())
	}
	auth.Password = reg.Password
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_PullImage{PullImage: &agentv1.PullImage{Image: remote, Auth: auth, Service: h.service}}})
	t.Cleanup(func() { dockertest.RemoveImage(h.cli, remote) })
	res = h.do(&agentv1.Operation{Op: &agentv1.Operation_PullImage{PullImage: &agentv1.PullImage{Image: remote, Auth: auth, Service: "other"}}})
	if res.GetOk() || !strings.Contains(res.GetError(), "missing the 'service' label") {
		t.Errorf("pull with the wrong service = ok %v %q, want the service label error", res.GetOk(), res.GetError())
	}
}

func TestProxy_TooOldAndReboot(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1")
	old := dockertest.BuildProxyImage(t, h.cli, "kctl-test/"+h.prefix+"-kamal-proxy")
	oldRef := strings.TrimSuffix(old, ":v0.9.2") + ":v0.9.1"
	if err := h.cli.ImageTag(context.Background(), old, oldRef); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dockertest.RemoveImage(h.cli, oldRef) })
	h.proxyRef = oldRef
	h.proxyPort = dockertest.FreePort(t)
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: h.network}}})
	boot := func(reboot bool) *agentv1.Result {
		return h.do(&agentv1.Operation{Op: &agentv1.Operation_BootProxy{BootProxy: &agentv1.BootProxy{Boot: &specv1.ProxyBoot{Container: h.proxyContainer()}, Reboot: reboot}}})
	}
	if res := boot(false); !res.GetOk() {
		t.Fatalf("first boot = %q", res.GetError())
	}
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: h.app("web", "v1"), Proxy: h.proxyDeploy("web")}}})
	h.wantServes("v1")
	h.proxyRef = old
	res := boot(false)
	want := "kamal-proxy version v0.9.1 is too old, run `kctl proxy reboot` in order to update to at least v0.9.2"
	if res.GetOk() || !strings.Contains(res.GetError(), want) {
		t.Errorf("boot over an old proxy = ok %v %q, want %q", res.GetOk(), res.GetError(), want)
	}
	if res := boot(true); !res.GetOk() {
		t.Fatalf("reboot = %q", res.GetError())
	}
	// Routes survive the reboot through the proxy-config volume.
	h.wantServes("v1")
	// Maintenance and live.
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_ProxyControl{ProxyControl: &agentv1.ProxyControl{Action: agentv1.ProxyControl_ACTION_STOP, Service: h.service + "-web", DrainTimeout: 1, Message: "Back soon"}}})
	code, body, _ := h.get("/")
	if code != 503 || !strings.Contains(body, "Back soon") {
		t.Errorf("in maintenance GET / = %d %q, want 503 with the message", code, body)
	}
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_ProxyControl{ProxyControl: &agentv1.ProxyControl{Action: agentv1.ProxyControl_ACTION_RESUME, Service: h.service + "-web"}}})
	h.wantServes("v1")
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_ProxyControl{ProxyControl: &agentv1.ProxyControl{Action: agentv1.ProxyControl_ACTION_REMOVE, Service: h.service + "-web"}}})
	res = h.do(&agentv1.Operation{Op: &agentv1.Operation_ProxyControl{ProxyControl: &agentv1.ProxyControl{Action: agentv1.ProxyControl_ACTION_REMOVE, Service: h.service + "-web"}}})
	if res.GetOk() || !strings.Contains(res.GetError(), "service not found") {
		t.Errorf("second remove = ok %v %q, want service not found", res.GetOk(), res.GetError())
	}
	if code, _, _ := h.get("/"); code != 404 {
		t.Errorf("after remove GET / = %d, want 404", code)
	}
}

func TestProxy_HostConflict(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1")
	h.bootProxy()
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: h.app("web", "v1"), Proxy: h.proxyDeploy("web", `--host="a.example"`)}}})
	res := h.boot(h.app("api", "v1"), h.proxyDeploy("api", `--host="a.example"`))
	if res.GetOk() || !strings.Contains(res.GetError(), "host settings conflict with another service") {
		t.Errorf("conflicting deploy = ok %v %q, want host conflict", res.GetOk(), res.GetError())
	}
	if got := h.state(h.service + "-api-v1"); got != "exited" {
		t.Errorf("api-v1 = %q, want exited", got)
	}
	// `app stop`: unregister from the proxy, then stop.
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_AppControl{AppControl: &agentv1.AppControl{Action: agentv1.AppControl_ACTION_STOP, Service: h.service, Role: "web"}}})
	if got := h.state(h.service + "-web-v1"); got != "exited" {
		t.Errorf("web-v1 after app stop = %q, want exited", got)
	}
	out, err := h.rt.Proxy().List(context.Background())
	if err != nil || strings.Contains(out, h.service+"-web") {
		t.Errorf("proxy list after app stop = %q %v, want no %s-web", out, err, h.service)
	}
}

func TestBootAccessory(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1")
	port := dockertest.FreePort(t)
	name := h.service + "-db"
	c := &specv1.Container{
		Kind: specv1.ContainerKind_CONTAINER_KIND_ACCESSORY, Name: name, Image: h.repo + ":v1",
		Restart: "unless-stopped", Network: h.network,
		Env:     []*specv1.KeyValue{{Key: "KAMAL_HOST", Value: "127.0.0.1"}, {Key: "VERSION", Value: "db"}},
		EnvFile: ".kamal/apps/" + h.service + "/env/accessories/db.env", SecretEnv: []*specv1.KeyValue{{Key: "DB_PASSWORD", Value: "pw"}},
		Labels:      []*specv1.KeyValue{{Key: "service", Value: name}},
		Publish:     []string{fmt.Sprintf("127.0.0.1:%d:80", port)},
		Volumes:     []string{"$PWD/" + name + "/data:/data"},
		Files:       []*specv1.File{{Path: name + "/conf/my.cnf", Content: []byte("[mysqld]\n"), Mode: 0o640, Owner: fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())}},
		Directories: []string{name + "/data"},
		Service:     name,
	}
	op := &agentv1.Operation{Op: &agentv1.Operation_BootAccessory{BootAccessory: &agentv1.BootAccessory{Container: c}}}
	first := h.mustDo(op)
	second := h.mustDo(op)
	if first.GetContainerId() != second.GetContainerId() {
		t.Errorf("second boot made %s, want the existing %s", second.GetContainerId(), first.GetContainerId())
	}
	if b, err := os.ReadFile(filepath.Join(h.dataDir, name, "conf/my.cnf")); err != nil || string(b) != "[mysqld]\n" {
		t.Errorf("accessory file = %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(h.dataDir, name, "conf/my.cnf")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("accessory file = %v, want mode 0640", err)
	}
	if fi, err := os.Stat(filepath.Join(h.dataDir, name, "data")); err != nil || !fi.IsDir() {
		t.Errorf("accessory directory: %v", err)
	}
	dockertest.WaitFor(t, 10*time.Second, func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/env/DB_PASSWORD", port))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if strings.TrimSpace(string(b)) != "pw" {
			return fmt.Errorf("DB_PASSWORD = %q", b)
		}
		return nil
	})
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_AccessoryControl{AccessoryControl: &agentv1.AccessoryControl{Action: agentv1.AccessoryControl_ACTION_RESTART, Name: name}}})
	if got := h.state(name); got != "running" {
		t.Errorf("after restart %s = %q, want running", name, got)
	}
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_AccessoryControl{AccessoryControl: &agentv1.AccessoryControl{Action: agentv1.AccessoryControl_ACTION_REMOVE, Name: name}}})
	if got := h.state(name); got != "" {
		t.Errorf("after remove %s = %q, want gone", name, got)
	}
	if _, err := os.Stat(filepath.Join(h.dataDir, name)); !os.IsNotExist(err) {
		t.Errorf("accessory dir after remove: %v, want removed", err)
	}
}

func TestBootApp_OptionsReachTheEngine(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1")
	h.mustDo(opEnsureNetwork(h.network))
	c := h.app("worker", "v1")
	c.Logging = &specv1.Logging{Driver: "json-file", Options: []*specv1.KeyValue{{Key: "max-size", Value: "5m"}, {Key: "max-file", Value: "2"}}}
	c.Volumes = []string{h.prefix + "-vol:/data", "$PWD/shared:/shared:ro"}
	c.Labels = append(c.Labels, &specv1.KeyValue{Key: "team", Value: "ops"})
	c.Options = []*specv1.Option{
		{Name: "memory", Value: "64m"}, {Name: "cpus", Value: "0.5"}, {Name: "cap-add", Value: "NET_ADMIN"},
		{Name: "add-host", Value: "db.internal:10.0.0.7"}, {Name: "ulimit", Value: "nofile=1024:2048"},
		{Name: "shm-size", Value: "32m"}, {Name: "tmpfs", Value: "/scratch:size=8m"}, {Name: "init", Bare: true},
		{Name: "security-opt", Value: "no-new-privileges"}, {Name: "sysctl", Value: "net.core.somaxconn=512"},
		{Name: "group-add", Value: "60000"}, {Name: "dns", Value: "9.9.9.9"}, {Name: "pids-limit", Value: "64"},
		{Name: "network-alias", Value: h.prefix + "-worker"}, {Name: "stop-signal", Value: "SIGINT"},
		{Name: "stop-timeout", Value: "7"}, {Name: "read-only", Bare: true}, {Name: "workdir", Value: "/"},
	}
	dockertest.CleanupContainers(t, h.cli, h.prefix, nil, []string{h.prefix + "-vol"})
	res := h.do(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: c, Readiness: &specv1.Readiness{DeployTimeout: 5}}}})
	if !res.GetOk() {
		t.Fatalf("boot = %q %q", res.GetError(), res.GetDetail())
	}
	in, err := h.cli.ContainerInspect(context.Background(), res.GetContainerId())
	if err != nil {
		t.Fatal(err)
	}
	hc := in.HostConfig
	for _, ck := range []struct {
		name      string
		got, want any
	}{
		{"memory", hc.Memory, int64(64 << 20)},
		{"cpus", hc.NanoCPUs, int64(5e8)},
		{"cap-add", strings.ReplaceAll(fmt.Sprint(hc.CapAdd), "CAP_", ""), "[NET_ADMIN]"},
		{"add-host", fmt.Sprint(hc.ExtraHosts), "[db.internal:10.0.0.7]"},
		{"ulimit", fmt.Sprint(*hc.Ulimits[0]), "{nofile 2048 1024}"},
		{"shm-size", hc.ShmSize, int64(32 << 20)},
		{"tmpfs", hc.Tmpfs["/scratch"], "size=8m"},
		{"init", *hc.Init, true},
		{"security-opt", fmt.Sprint(hc.SecurityOpt), "[no-new-privileges]"},
		{"sysctl", hc.Sysctls["net.core.somaxconn"], "512"},
		{"group-add", fmt.Sprint(hc.GroupAdd), "[60000]"},
		{"dns", fmt.Sprint(hc.DNS), "[9.9.9.9]"},
		{"pids-limit", *hc.PidsLimit, int64(64)},
		{"network-alias", slices.Contains(in.NetworkSettings.Networks[h.network].Aliases, h.prefix+"-worker"), true},
		{"stop-signal", in.Config.StopSignal, "SIGINT"},
		{"stop-timeout", *in.Config.StopTimeout, 7},
		{"read-only", hc.ReadonlyRootfs, true},
		{"log driver", hc.LogConfig.Type, "json-file"},
		{"log opts", fmt.Sprint(hc.LogConfig.Config), "map[max-file:2 max-size:5m]"},
		{"volumes", fmt.Sprint(hc.Binds), fmt.Sprintf("[%s-vol:/data %s:/shared:ro]", h.prefix, filepath.Join(h.dataDir, "shared"))},
		{"label", in.Config.Labels["team"], "ops"},
	} {
		if fmt.Sprint(ck.got) != fmt.Sprint(ck.want) {
			t.Errorf("inspect %s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// A role without a proxy whose Docker health check fails is not ready:
// the new container is stopped and the error says why (Kamal §3.4).
func TestBootApp_ReadinessUnhealthy(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1")
	h.mustDo(opEnsureNetwork(h.network))
	c := h.app("worker", "v1")
	// FROM scratch has no /bin/sh, so a CMD-SHELL check always fails.
	c.Options = []*specv1.Option{{Name: "health-cmd", Value: "true"}, {Name: "health-interval", Value: "200ms"}, {Name: "health-retries", Value: "1"}}
	res := h.do(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: c, Readiness: &specv1.Readiness{DeployTimeout: 3}}}})
	if res.GetOk() || !strings.Contains(res.GetError(), "container not ready after 3 seconds (unhealthy)") {
		t.Errorf("boot = ok %v %q, want not ready (unhealthy)", res.GetOk(), res.GetError())
	}
	if got := h.state(c.GetName()); got != "exited" {
		t.Errorf("state = %q, want exited", got)
	}
}

// Without proxy.run, Kamal reads the deprecated boot_config files.
func TestBootProxy_LegacyBootConfig(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1")
	ref := dockertest.BuildProxyImage(t, h.cli, "kctl-test/"+h.prefix+"-kamal-proxy")
	h.proxyPort = dockertest.FreePort(t)
	dir := filepath.Join(h.dataDir, ".kamal", "proxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	repo, _, _ := strings.Cut(ref, ":")
	for name, content := range map[string]string{
		"options":       fmt.Sprintf("--publish 127.0.0.1:%d:80 --log-opt max-size=5m", h.proxyPort),
		"image":         repo,
		"image_version": "v0.9.2",
		"run_command":   "kamal-proxy run --debug",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.mustDo(opEnsureNetwork(h.network))
	c := h.proxyContainer()
	c.Image = "basecamp/kamal-proxy:v0.9.2" // Kamal's default, overridden by the files
	c.Publish = []string{"80:80", "443:443"}
	c.Args = nil
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootProxy{BootProxy: &agentv1.BootProxy{Boot: &specv1.ProxyBoot{Container: c, Legacy: true}}}})
	in, err := h.cli.ContainerInspect(context.Background(), h.prefix+"-proxy")
	if err != nil {
		t.Fatal(err)
	}
	if in.Config.Image != ref || fmt.Sprint(in.Config.Cmd) != "[kamal-proxy run --debug]" || in.HostConfig.LogConfig.Config["max-size"] != "5m" {
		t.Errorf("legacy proxy = image %s cmd %v log %v, want %s [kamal-proxy run --debug] max-size 5m", in.Config.Image, in.Config.Cmd, in.HostConfig.LogConfig.Config, ref)
	}
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: h.app("web", "v1"), Proxy: h.proxyDeploy("web")}}})
	h.wantServes("v1")
}

func TestBootApp_AssetsCrossCopied(t *testing.T) {
	h := newHarness(t)
	for _, v := range []string{"v1", "v2"} {
		dockertest.BuildAppImageFiles(t, h.cli, h.repo+":"+v, map[string]string{"service": h.service},
			map[string]string{"/public/assets/app-" + v + ".css": "body{}/*" + v + "*/", "/public/assets/shared.js": v})
	}
	h.bootProxy()
	withAssets := func(v string) *specv1.Container {
		c := h.app("web", v)
		c.AssetPath = "/public/assets"
		c.Volumes = append(c.Volumes, "$PWD/.kamal/apps/"+h.service+"/assets/volumes/web-"+v+":/public/assets")
		return c
	}
	assets := filepath.Join(h.dataDir, ".kamal/apps", h.service, "assets")
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: withAssets("v1"), Proxy: h.proxyDeploy("web")}}})
	if b, err := os.ReadFile(filepath.Join(assets, "volumes/web-v1/app-v1.css")); err != nil || string(b) != "body{}/*v1*/" {
		t.Fatalf("v1 asset volume: %q %v", b, err)
	}
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: withAssets("v2"), Proxy: h.proxyDeploy("web")}}})
	for file, want := range map[string]string{"app-v1.css": "body{}/*v1*/", "app-v2.css": "body{}/*v2*/", "shared.js": "v2"} {
		if b, err := os.ReadFile(filepath.Join(assets, "volumes/web-v2", file)); err != nil || string(b) != want {
			t.Errorf("v2 asset volume %s = %q %v, want %q", file, b, err, want)
		}
	}
	for _, dir := range []string{"volumes/web-v1", "extracted/web-v1"} {
		if _, err := os.Stat(filepath.Join(assets, dir)); !os.IsNotExist(err) {
			t.Errorf("%s after the switch: %v, want removed", dir, err)
		}
	}
	if got := h.state(h.service + "-web-assets"); got != "" {
		t.Errorf("assets container left: %q", got)
	}
}

func TestDo_EmptyOperationAndNoop(t *testing.T) {
	h := newHarness(t)
	res := h.do(&agentv1.Operation{})
	if res.GetOk() || !strings.Contains(res.GetError(), "unknown operation") {
		t.Errorf("Do(empty) = ok %v %q, want unknown operation", res.GetOk(), res.GetError())
	}
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: "x"}}})
	res = h.do(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{}}})
	if res.GetOk() || !strings.Contains(res.GetError(), "needs a name and an image") {
		t.Errorf("Do(BootApp{}) = ok %v %q, want a clear error", res.GetOk(), res.GetError())
	}
}
