package docker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// getHost fetches /version through the proxy for a virtual host.
func (h *harness) getHost(host string) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/version", h.proxyPort), nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// waitHost waits until host serves version, polling every millisecond: the
// benchmark times the switch to the moment traffic reaches it.
func (h *harness) waitHost(host, version string) error {
	return testenv.PollEvery(30*time.Second, time.Millisecond, func() error {
		if got, err := h.getHost(host); err != nil || got != version {
			return fmt.Errorf("%s serves %q (%v), want %q", host, got, err, version)
		}
		return nil
	})
}

func dockerCLI(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// cliSwitch does by hand, with the docker CLI, the steps Kamal runs over SSH
// for one host and role (§3.4): clash check, old version, docker run,
// endpoint, kamal-proxy deploy, stop old.
func (h *harness) cliSwitch(c *specv1.Container, p *specv1.ProxyDeploy) error {
	if id, err := dockerCLI("container", "ls", "--all", "--filter", "name=^"+c.GetName()+"$", "--quiet"); err != nil || id != "" {
		return fmt.Errorf("clash check: %q %v", id, err)
	}
	old, err := dockerCLI("ps", "--filter", "label=service="+c.GetService(), "--filter", "label=role="+c.GetRole(), "--filter", "label=destination=", "--latest", "--format", "{{.Names}}")
	if err != nil {
		return err
	}
	args := []string{"run", "--detach", "--restart", "unless-stopped", "--name", c.GetName(), "--network", c.GetNetwork(), "--hostname", c.GetHostname()}
	for _, kv := range c.GetEnv() {
		args = append(args, "--env", kv.GetKey()+"="+kv.GetValue())
	}
	envFile := h.dataDir + "/cli.env"
	if err := os.WriteFile(envFile, []byte("SECRET_KEY_BASE=x\n"), 0o600); err != nil {
		return err
	}
	args = append(args, "--env-file", envFile, "--log-opt", "max-size=10m")
	for _, kv := range c.GetLabels() {
		args = append(args, "--label", kv.GetKey()+"="+kv.GetValue())
	}
	args = append(args, "--label", "kctl.agent="+h.prefix, c.GetImage())
	if _, err := dockerCLI(args...); err != nil {
		return err
	}
	id, err := dockerCLI("container", "ls", "--all", "--filter", "name=^"+c.GetName()+"$", "--quiet")
	if err != nil {
		return err
	}
	deploy := []string{"exec", h.prefix + "-proxy", "kamal-proxy", "deploy", p.GetService(), "--target=" + id + ":80"}
	for _, f := range p.GetFlags() {
		deploy = append(deploy, strings.ReplaceAll(f, `"`, ""))
	}
	if _, err := dockerCLI(deploy...); err != nil {
		return err
	}
	if old != "" {
		oid, err := dockerCLI("container", "ls", "--all", "--filter", "name=^"+old+"$", "--quiet")
		if err != nil {
			return err
		}
		if _, err := dockerCLI("stop", "-t", "10", oid); err != nil {
			return err
		}
	}
	return nil
}

// removeExited removes the stopped containers of the service.
func (h *harness) removeExited() {
	list, _ := h.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "service="+h.service), filters.Arg("status", "exited"))})
	for _, c := range list {
		_ = h.cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	}
}

// BenchmarkSwitch measures "run v(N+1) and switch the proxy" until traffic
// reaches the new version, by the agent (BootApp) and by hand with the
// docker CLI (Kamal's commands), alternating in the same run against the
// same proxy and image.
//
//	go test -run XXX -bench Switch -benchtime 10x ./internal/agent/docker/
func BenchmarkSwitch(b *testing.B) {
	if _, err := exec.LookPath("docker"); err != nil {
		testenv.Unavailable(b, "docker CLI not installed: %v", err)
	}
	h := newHarness(b)
	h.rt = mustRuntimeQuiet(h)
	h.buildApp("v0")
	h.bootProxy()
	flags := func(host string) *specv1.ProxyDeploy {
		p := h.proxyDeploy("web", `--host="`+host+`"`)
		return p
	}
	agentDeploy := flags("agent.test")
	cliDeploy := flags("cli.test")
	cliDeploy.Service = h.service + "-cli"
	ctx := context.Background()
	tag := func(v string) {
		if err := h.cli.ImageTag(ctx, h.repo+":v0", h.repo+":"+v); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { dockertest.RemoveImage(h.cli, h.repo+":"+v) })
	}
	// Warm both paths once.
	tag("w")
	h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: h.app("web", "w"), Proxy: agentDeploy}}})
	if err := h.cliSwitch(h.app("cli", "w"), cliDeploy); err != nil {
		b.Fatal(err)
	}
	var agentTotal, cliTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		v := "i" + strconv.Itoa(i)
		tag(v)
		h.removeExited()
		b.StartTimer()
		runAgent := func() {
			start := time.Now()
			res := h.boot(h.app("web", v), agentDeploy)
			if !res.GetOk() {
				b.Fatalf("agent boot %s: %s", v, res.GetError())
			}
			if err := h.waitHost("agent.test", v); err != nil {
				b.Fatal(err)
			}
			agentTotal += time.Since(start)
		}
		runCLI := func() {
			start := time.Now()
			if err := h.cliSwitch(h.app("cli", v), cliDeploy); err != nil {
				b.Fatal(err)
			}
			if err := h.waitHost("cli.test", v); err != nil {
				b.Fatal(err)
			}
			cliTotal += time.Since(start)
		}
		if i%2 == 0 {
			runAgent()
			runCLI()
		} else {
			runCLI()
			runAgent()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(agentTotal.Milliseconds())/n, "agent-ms/switch")
	b.ReportMetric(float64(cliTotal.Milliseconds())/n, "cli-ms/switch")
	b.ReportMetric(float64(agentTotal)/float64(cliTotal), "agent/cli")
}

// mustRuntimeQuiet is the harness runtime without per-step logging.
func mustRuntimeQuiet(h *harness) *docker.Runtime {
	h.t.Helper()
	rt, err := docker.New(docker.Config{DataDir: h.dataDir, Client: h.cli, AgentName: h.prefix,
		ProxyName: h.prefix + "-proxy", ProxyVolume: h.prefix + "-proxy-config"})
	if err != nil {
		h.t.Fatal(err)
	}
	return rt
}

// BenchmarkAgentRSS measures an agent-like process (test/agent-idle) at
// rest with 20 managed containers: VmRSS from /proc after its first facts.
//
//	go test -run XXX -bench AgentRSS -benchtime 1x ./internal/agent/docker/
func BenchmarkAgentRSS(b *testing.B) {
	h := newHarness(b)
	h.rt = mustRuntimeQuiet(h)
	h.buildApp("v0")
	h.mustDo(opEnsureNetwork(h.network))
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		c := h.app("worker", "v0")
		c.Name = fmt.Sprintf("%s-worker%d-v0", h.service, i)
		c.Role = fmt.Sprintf("worker%d", i)
		c.Labels[1].Value = c.Role
		res := h.do(&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: c, Readiness: &specv1.Readiness{DeployTimeout: 10}}}})
		if !res.GetOk() {
			b.Fatalf("boot %s: %s", c.Name, res.GetError())
		}
	}
	bin := testenv.BuildBinary(b, "./test/agent-idle")
	var rss float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.CommandContext(ctx, bin, b.TempDir(), h.prefix, h.service, "worker0")
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready 20" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			b.Fatalf("agent-idle said %q, %v; want ready 20", line, err)
		}
		// At rest: measure after its first heartbeat settles.
		time.Sleep(time.Second) // measuring a process at rest needs it to rest
		rss = vmRSS(b, cmd.Process.Pid)
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	b.ReportMetric(rss/1024, "MiB-RSS")
}

func vmRSS(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
