// Package deploy benchmarks `kctl deploy --skip-push` of the test app to one
// host against the floor measured in the same run: the same pull, run,
// kamal-proxy deploy and stop steps done directly with the docker CLI.
//
// Everything is real: the controller, agent and kctl binaries, a
// docker-registry with htpasswd auth, the kamal-proxy stand-in and the app
// on the local engine. Each iteration deploys the other version (v1, v2,
// v1, …) once with kctl and once with the docker CLI, in alternating order,
// and the table at the end gives median and p90 of both and their ratio,
// and where kctl's time went.
//
//	go test -run '^$' -bench DeployVsDockerCLI -benchtime 10x ./bench/deploy/
package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/testenv"
	"google.golang.org/grpc"
)

// floorProxyFlags are the kamal-proxy deploy flags kctl derives from the
// project's deploy.yml (testenv.DeployYML, through internal/kamalconfig),
// so both paths wait for health alike.
var floorProxyFlags = []string{
	"--deploy-timeout=15s", "--drain-timeout=2s", "--health-check-interval=1s", "--health-check-timeout=5s",
	"--health-check-path=/up", "--buffer-requests", "--buffer-responses",
	"--log-request-header=Cache-Control", "--log-request-header=Last-Modified", "--log-request-header=User-Agent",
}

// run runs a command to completion and returns its stdout.
func run(env []string, dir, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

func BenchmarkDeployVsDockerCLI(b *testing.B) {
	cli := testenv.Docker(b)
	bin := testenv.Binaries(b)
	reg := testenv.StartRegistry(b)
	prefix := dockertest.Prefix(b)
	service := "bench" + prefix
	agentName := "web-" + prefix
	work := b.TempDir()

	// The app, as v1 and v2 (distinct images: a version label), in the
	// registry.
	repo := reg.Addr + "/kctl-bench/" + service
	b.Cleanup(func() { dockertest.RemoveImages(cli, repo) }) // the agent's tags (latest)
	for _, v := range []string{"v1", "v2"} {
		local := "kctl-bench/" + service + "-local:" + v
		dockertest.BuildAppImage(b, cli, local, map[string]string{"service": service, "version": v})
		dockertest.Push(b, cli, reg, local, repo+":"+v)
	}
	proxyRepo := "kctl-bench/proxy-" + prefix
	proxyImage := dockertest.BuildProxyImage(b, cli, proxyRepo)
	dockertest.CleanupContainers(b, cli, service, nil, nil)
	dockertest.CleanupContainers(b, cli, "kamal-proxy-"+agentName, nil, []string{"kamal-proxy-config-" + agentName})
	floorNet := prefix + "-floor"
	dockertest.CleanupContainers(b, cli, prefix+"-floor", []string{floorNet}, nil)

	// Controller, credentials, agent.
	cdir := filepath.Join(work, "c1")
	api := testenv.FreeAddr(b)
	testenv.Start(b, "controller", exec.Command(filepath.Join(bin, "controller"), "run", "--name", "c1", "--data-dir", cdir, "--listen", api, "--raft-listen", testenv.FreeAddr(b), "--init", "--heartbeat-interval", "1s"))
	creds := filepath.Join(cdir, "admin.kctl.yaml")
	testenv.WaitFor(b, 30*time.Second, func() error { _, err := os.Stat(creds); return err })
	kenv := []string{"KCTL_CREDENTIALS=" + creds}
	kctl := filepath.Join(bin, "kctl")
	var tok string
	testenv.WaitFor(b, 30*time.Second, func() error { // an agent token
		out, err := run(kenv, work, kctl, "token", "create", "--role", "agent", "--ttl", "10m")
		tok = strings.TrimSpace(out)
		return err
	})
	testenv.Start(b, "agent", exec.Command(filepath.Join(bin, "agent"), "run", "--name", agentName, "--data-dir", filepath.Join(work, "agent"), "--controller", api, "--token", tok, "--shared-engine"))
	testenv.WaitFor(b, 30*time.Second, func() error { // the agent connected
		out, err := run(kenv, work, kctl, "agents", "-o", "json")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"connected"`) {
			return fmt.Errorf("agents: %s", out)
		}
		return nil
	})

	// The Kamal project.
	yml := testenv.DeployYML{Service: service, Image: "kctl-bench/" + service, Roles: []testenv.Role{{Name: "web", Hosts: []string{agentName}}},
		ProxyRepo: proxyRepo, HTTPPort: testenv.FreePort(b), HTTPSPort: testenv.FreePort(b), Registry: reg}
	project := testenv.NewProject(b, filepath.Join(work, "app"), yml.String(), "KAMAL_REGISTRY_PASSWORD="+reg.Password+"\n")
	project.Write(b, "Dockerfile", "FROM scratch\n", 0o644)
	proj := project.Dir

	// The docker CLI floor: its own CLI config (login), network and proxy.
	denv := []string{"DOCKER_CONFIG=" + filepath.Join(work, "docker-config")}
	docker, err := exec.LookPath("docker")
	if err != nil {
		testenv.Unavailable(b, "docker CLI not installed: %v", err)
	}
	login := exec.Command(docker, "login", reg.Addr, "-u", reg.User, "--password-stdin")
	login.Env = append(os.Environ(), denv...)
	login.Stdin = strings.NewReader(reg.Password)
	if out, err := login.CombinedOutput(); err != nil {
		b.Fatalf("docker login: %v\n%s", err, out)
	}
	mustRun(b, denv, work, docker, "network", "create", floorNet)
	floorProxy := prefix + "-floor-proxy"
	mustRun(b, denv, work, docker, "run", "--detach", "--name", floorProxy, "--network", floorNet, proxyImage)
	testenv.WaitFor(b, 30*time.Second, func() error { // the floor's kamal-proxy
		_, err := run(denv, work, docker, "exec", floorProxy, "kamal-proxy", "list")
		return err
	})
	var floorCurrent string
	floorN := 0
	floor := func(version string) time.Duration {
		floorN++
		name := fmt.Sprintf("%s-floor-web-%s-%d", prefix, version, floorN)
		t0 := time.Now()
		mustRun(b, denv, work, docker, "pull", "--quiet", repo+":"+version)
		mustRun(b, denv, work, docker, "run", "--detach", "--restart", "unless-stopped", "--name", name, "--network", floorNet,
			"--log-opt", "max-size=10m", "--label", "service="+prefix+"-floor", "--label", "role=web", "-e", "KAMAL_VERSION="+version, repo+":"+version)
		mustRun(b, denv, work, docker, append([]string{"exec", floorProxy, "kamal-proxy", "deploy", prefix + "-floor-web", "--target=" + name + ":80"}, floorProxyFlags...)...)
		if floorCurrent != "" {
			mustRun(b, denv, work, docker, "stop", floorCurrent)
		}
		d := time.Since(t0)
		floorCurrent = name
		return d
	}

	admin, err := ctlclient.LoadFile(creds)
	must(b, err)
	acreds, err := admin.Credentials()
	must(b, err)
	ctl := ctlclient.NewClient(acreds, []string{api}, 10*time.Second)
	kctlDeploy := func(version string) (time.Duration, *deployv1.GetResponse) {
		t0 := time.Now()
		mustRun(b, kenv, proj, kctl, "deploy", "--skip-push", "--version", version)
		d := time.Since(t0)
		var got *deployv1.GetResponse
		must(b, ctl.CallConn(context.Background(), func(ctx context.Context, cc grpc.ClientConnInterface) error {
			dc := deployv1.NewDeployServiceClient(cc)
			l, err := dc.List(ctx, &deployv1.ListRequest{Limit: 1})
			if err != nil || len(l.GetDeploys()) == 0 {
				return fmt.Errorf("list deploys: %v", err)
			}
			got, err = dc.Get(ctx, &deployv1.GetRequest{Id: l.GetDeploys()[0].GetId()})
			return err
		}))
		return d, got
	}

	// Warm up both paths with v1 (boots kctl's proxy; untimed).
	kctlDeploy("v1")
	floor("v1")

	var kt, ft []time.Duration
	var breakdowns []breakdown
	i := 0
	for b.Loop() {
		version := []string{"v2", "v1"}[i%2]
		var k, f time.Duration
		var rec *deployv1.GetResponse
		if i%2 == 0 {
			k, rec = kctlDeploy(version)
			f = floor(version)
		} else {
			f = floor(version)
			k, rec = kctlDeploy(version)
		}
		kt, ft = append(kt, k), append(ft, f)
		breakdowns = append(breakdowns, breakdownOf(k, rec))
		i++
	}
	b.StopTimer()
	report(b, kt, ft, breakdowns)
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func mustRun(b *testing.B, env []string, dir, bin string, args ...string) string {
	b.Helper()
	out, err := run(env, dir, bin, args...)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// breakdown splits one kctl deploy's wall time.
type breakdown struct {
	// client: kctl's own time (start-up, config, submit, watch) outside
	// the controller's record of the deploy.
	client time.Duration
	// steps: per phase, first step start to last step end, summed (the
	// agents' work plus per-step dispatch).
	steps time.Duration
	// between: controller time between phases (the deploy's created to
	// finished, minus steps).
	between time.Duration
	// phases: step time per phase name.
	phases map[string]time.Duration
}

func breakdownOf(wall time.Duration, g *deployv1.GetResponse) breakdown {
	bd := breakdown{phases: map[string]time.Duration{}}
	byID := map[string]*deployv1.StepRecord{}
	for _, s := range g.GetSteps() {
		byID[s.GetStepId()] = s
	}
	for _, ph := range g.GetDeploy().GetPlan().GetPhases() {
		var first, last int64
		for _, s := range ph.GetSteps() {
			sr := byID[s.GetId()]
			if sr == nil {
				continue
			}
			if first == 0 || sr.GetStartedUnixMillis() < first {
				first = sr.GetStartedUnixMillis()
			}
			last = max(last, sr.GetFinishedUnixMillis())
		}
		d := time.Duration(last-first) * time.Millisecond
		bd.phases[ph.GetName()] += d
		bd.steps += d
	}
	ctl := time.Duration(g.GetDeploy().GetFinishedUnixMillis()-g.GetDeploy().GetCreatedUnixMillis()) * time.Millisecond
	bd.between = ctl - bd.steps
	bd.client = wall - ctl
	return bd
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }

func report(b *testing.B, kt, ft []time.Duration, bds []breakdown) {
	var w strings.Builder
	fmt.Fprintf(&w, "\n%d iterations, alternating v2/v1, one host (real controller, agent, registry, kamal-proxy stand-in)\n", len(kt))
	fmt.Fprintf(&w, "%-26s %9s %9s\n", "", "median", "p90")
	fmt.Fprintf(&w, "%-26s %9s %9s\n", "kctl deploy --skip-push", ms(quantile(kt, .5)), ms(quantile(kt, .9)))
	fmt.Fprintf(&w, "%-26s %9s %9s\n", "docker CLI floor", ms(quantile(ft, .5)), ms(quantile(ft, .9)))
	fmt.Fprintf(&w, "%-26s %9.2f %9.2f\n", "ratio kctl/floor", float64(quantile(kt, .5))/float64(quantile(ft, .5)), float64(quantile(kt, .9))/float64(quantile(ft, .9)))
	var client, steps, between []time.Duration
	phases := map[string][]time.Duration{}
	var names []string
	for _, bd := range bds {
		client, steps, between = append(client, bd.client), append(steps, bd.steps), append(between, bd.between)
		for n, d := range bd.phases {
			if _, ok := phases[n]; !ok {
				names = append(names, n)
			}
			phases[n] = append(phases[n], d)
		}
	}
	slices.Sort(names)
	fmt.Fprintf(&w, "kctl breakdown (median): kctl client %s, steps %s, controller between phases %s\n", ms(quantile(client, .5)), ms(quantile(steps, .5)), ms(quantile(between, .5)))
	for _, n := range names {
		fmt.Fprintf(&w, "  phase %-10s %s\n", n, ms(quantile(phases[n], .5)))
	}
	fmt.Fprintf(&w, "%-4s %9s %9s\n", "iter", "kctl", "floor")
	for i := range kt {
		fmt.Fprintf(&w, "%-4d %9s %9s\n", i+1, ms(kt[i]), ms(ft[i]))
	}
	fmt.Print(w.String())
	b.ReportMetric(float64(quantile(kt, .5))/1e6, "kctl-median-ms")
	b.ReportMetric(float64(quantile(ft, .5))/1e6, "floor-median-ms")
	b.ReportMetric(float64(quantile(kt, .5))/float64(quantile(ft, .5)), "ratio")
}
