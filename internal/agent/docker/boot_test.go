package docker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/testenv"
)

func TestBootApp_ZeroDowntimeSwitch(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1", "v2")
	h.bootProxy()

	res := h.boot(h.app("web", "v1"), h.proxyDeploy("web"))
	if !res.GetOk() {
		t.Fatalf("boot v1 = %q %q, want ok", res.GetError(), res.GetDetail())
	}
	if got := len(res.GetContainerId()); got != 64 {
		t.Errorf("boot v1 container id length = %d, want 64", got)
	}
	h.wantServes("v1")

	// A client loops through the proxy during the switch.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := h.get("/version")
				if err != nil || code != 200 || (body != "v1" && body != "v2") {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, errors.New(body+" "+http.StatusText(code)+" "+errString(err)))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	res = h.boot(h.app("web", "v2"), h.proxyDeploy("web"))
	// Keep the client going a little after the switch (bounded by requests,
	// not by sleeping).
	target := ok.Load() + 50
	for ok.Load() < target && failed.Load() == 0 {
		_, _, _ = h.get("/up")
	}
	close(stop)
	wg.Wait()
	if !res.GetOk() {
		t.Fatalf("boot v2 = %q %q, want ok", res.GetError(), res.GetDetail())
	}
	if f := failed.Load(); f != 0 {
		t.Errorf("failed requests across the switch = %d (first: %v), want 0 (ok: %d)", f, firstErr.Load(), ok.Load())
	}
	t.Logf("requests across the switch: %d ok, %d failed", ok.Load(), failed.Load())
	h.wantServes("v2")
	if got := h.state(h.service + "-web-v1"); got != "exited" {
		t.Errorf("v1 state = %q, want exited", got)
	}
	if got := h.state(h.service + "-web-v2"); got != "running" {
		t.Errorf("v2 state = %q, want running", got)
	}

	// The spec reaches the container as Kamal's docker run would put it.
	in, err := h.cli.ContainerInspect(context.Background(), h.service+"-web-v2")
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{"KAMAL_CONTAINER_NAME=" + h.service + "-web-v2", "KAMAL_VERSION=v2", "KAMAL_HOST=127.0.0.1", "SECRET_KEY_BASE=s3cr3t-v2"}
	for _, e := range wantEnv {
		if !slices.Contains(in.Config.Env, e) {
			t.Errorf("env %q missing from %q", e, in.Config.Env)
		}
	}
	for k, v := range map[string]string{"service": h.service, "role": "web", "destination": ""} {
		if got, ok := in.Config.Labels[k]; !ok || got != v {
			t.Errorf("label %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if in.HostConfig.RestartPolicy.Name != "unless-stopped" {
		t.Errorf("restart = %q, want unless-stopped", in.HostConfig.RestartPolicy.Name)
	}
	if got := in.HostConfig.LogConfig.Config["max-size"]; got != "10m" {
		t.Errorf("log-opt max-size = %q, want 10m", got)
	}
	if in.Config.Hostname != "127.0.0.1-"+h.prefix+"abcdef" {
		t.Errorf("hostname = %q", in.Config.Hostname)
	}
	if _, ok := in.NetworkSettings.Networks[h.network]; !ok {
		t.Errorf("networks = %v, want %s", in.NetworkSettings.Networks, h.network)
	}
	envFile := filepath.Join(h.dataDir, ".kamal/apps", h.service, "env/roles/web.env")
	fi, err := os.Stat(envFile)
	if err != nil {
		t.Fatalf("env file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode = %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(envFile); string(b) != "SECRET_KEY_BASE=s3cr3t-v2\n" {
		t.Errorf("env file = %q", b)
	}

	// Re-running the same boot converges: still one v2 container, serving.
	res = h.boot(h.app("web", "v2"), h.proxyDeploy("web"))
	if !res.GetOk() {
		t.Fatalf("re-boot v2 = %q, want ok", res.GetError())
	}
	if n := h.countVersions("v2"); n != 1 {
		t.Errorf("containers of v2 after re-run = %d, want 1", n)
	}
	h.wantServes("v2")
}

func TestBootApp_UnhealthyKeepsOldServing(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1", "v2")
	h.bootProxy()
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: h.app("web", "v1"), Proxy: h.proxyDeploy("web")}}})
	h.wantServes("v1")

	bad := h.app("web", "v2", &specv1.KeyValue{Key: "UNHEALTHY", Value: "1"})
	p := h.proxyDeploy("web")
	p.Flags[0] = `--deploy-timeout="2s"`
	res := h.boot(bad, p)
	if res.GetOk() {
		t.Fatal("boot of unhealthy v2 ok, want failure")
	}
	if !strings.Contains(res.GetError(), "target failed to become healthy") {
		t.Errorf("error = %q, want the health timeout", res.GetError())
	}
	if !strings.Contains(res.GetDetail(), "app v2: listening") {
		t.Errorf("detail = %q, want the container's last log lines", res.GetDetail())
	}
	h.wantServes("v1")
	if got := h.state(h.service + "-web-v2"); got != "exited" {
		t.Errorf("v2 state = %q, want exited (stopped, not removed)", got)
	}
	if got := h.state(h.service + "-web-v1"); got != "running" {
		t.Errorf("v1 state = %q, want running", got)
	}
}

func TestBootApp_CrashSafety(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1", "v2")
	h.bootProxy()
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: h.app("web", "v1"), Proxy: h.proxyDeploy("web")}}})

	// v2 boots slowly; cancel the operation while the proxy waits for it.
	slow := h.app("web", "v2", &specv1.KeyValue{Key: "START_DELAY", Value: "2s"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.rt.Do(ctx, &agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: slow, Proxy: h.proxyDeploy("web")}}})
		done <- err
	}()
	testenv.WaitFor(t, 30*time.Second, func() error {
		if st := h.state(h.service + "-web-v2"); st != "running" {
			return fmt.Errorf("v2 is %q, want running", st)
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled boot error = %v, want context.Canceled", err)
	}
	// Re-run: one container per version, v2 serving, v1 stopped.
	for i := 0; i < 2; i++ {
		res := h.boot(slow, h.proxyDeploy("web"))
		if !res.GetOk() {
			t.Fatalf("re-run %d = %q %q", i, res.GetError(), res.GetDetail())
		}
	}
	if n := h.countVersions("v2"); n != 1 {
		t.Errorf("v2 containers = %d, want 1", n)
	}
	if n := h.countVersions("v1"); n != 1 {
		t.Errorf("v1 containers = %d, want 1", n)
	}
	h.wantServes("v2")
	if got := h.state(h.service + "-web-v1"); got != "exited" {
		t.Errorf("v1 state = %q, want exited", got)
	}
}

// countVersions counts containers whose name is the version's or a
// `_replaced_` copy of it.
func (h *harness) countVersions(v string) int {
	list, err := h.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "service="+h.service))})
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0
	for _, c := range list {
		name := strings.TrimPrefix(c.Names[0], "/")
		if strings.HasSuffix(name, "-"+v) || strings.Contains(name, "-"+v+"_replaced_") {
			n++
		}
	}
	return n
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
