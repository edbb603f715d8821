// Command fleet benchmarks the controller's deploy planning and dispatch:
// N simulated agents (the real agent session code over real mutual TLS,
// with a runtime that answers every operation at once with OK) connect to a
// 3-node controller cluster running in this process; a deploy of one role
// over the N hosts (proxy role, boot limit 10) is submitted through the real
// deploy service (gRPC, as kctl does) and watched to its end.
//
// It prints, per run, the end-to-end time (Submit until the Watch stream
// reports the deploy finished), the number of host-steps, the time per host
// and per host-step, the scheduler's planning time per host measured apart,
// and the CPU time this process (controllers and simulated agents) spent
// per host, which other load on the machine does not inflate. Each deploy's
// secrets are sealed to every host's agent first, as kctl does (ListAgents,
// the CA's certification of each key checked, one HPKE bundle per host):
// seal/host is that cost per host, included in the total. As the runtime does nothing, the end-to-end time is the
// controller's planning and dispatch overhead (plus the simulated agents'
// session work).
//
//	go run ./bench/fleet -n 100 -runs 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/kctl-dev/kctl/bench/internal/benchenv"
	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/agent/exec"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/scheduler"
	"github.com/kctl-dev/kctl/internal/sealbox"
	"github.com/kctl-dev/kctl/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var (
	hosts      = flag.Int("n", 100, "simulated agents (hosts)")
	runs       = flag.Int("runs", 5, "deploys to time")
	limit      = flag.Uint("boot-limit", 10, "boot.limit")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the timed deploys")
	commitTO   = flag.Duration("raft-commit-timeout", 0, "controllers' Raft CommitTimeout (0: the controller's default)")
	verbose    = flag.Bool("v", false, "print each deploy's phases and the controllers' warnings to stderr")
)

// okRuntime answers every operation at once with OK (facts from
// FakeRuntime, so the agents' Hello looks real).
type okRuntime struct{ facts agent.FakeRuntime }

var _ exec.Runtime = (*okRuntime)(nil)

func (r *okRuntime) Do(ctx context.Context, op *agentv1.Operation) (*agentv1.Result, error) {
	switch op.GetOp().(type) {
	case *agentv1.Operation_Noop, *agentv1.Operation_GatherFacts:
		return r.facts.Do(ctx, op)
	}
	return &agentv1.Result{Ok: true}, nil
}

func run() error {
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "kctl-bench-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	cluster, err := benchenv.StartCluster(ctx, benchenv.Config{Dir: dir, N: 3, Logger: logger, Raft: func(c *raftstore.Config) {
		if *commitTO > 0 {
			c.CommitTimeout = *commitTO
		}
	}})
	if err != nil {
		return err
	}
	defer cluster.Close()
	cl := cluster.Admin
	tok, err := cluster.Token(ctx, controllerv1.Role_ROLE_AGENT, uint32(*hosts))
	if err != nil {
		return err
	}
	agents, err := benchenv.StartAgents(ctx, cluster.Addrs(), tok, *hosts, func(i int) agent.Config {
		name := fmt.Sprintf("h%03d", i)
		return agent.Config{Name: name, DataDir: filepath.Join(dir, "agents", name), Runtime: &okRuntime{facts: agent.FakeRuntime{Containers: fakeContainers}}, Version: "bench",
			Logger: logger, InMemory: true, DialTimeout: 30 * time.Second}
	})
	if err != nil {
		return err
	}
	defer agents.Stop()
	names := agents.Names

	planPerHost := planningTime(request(names, "v0"))
	caCert := cluster.Nodes[0].Credentials().CACert()
	seal := func(req *deployv1.Request) (*deployv1.Request, time.Duration, error) {
		start := time.Now()
		var infos []*controllerv1.AgentInfo
		err := cl.Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			resp, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
			infos = resp.GetAgents()
			return err
		})
		if err != nil {
			return nil, 0, err
		}
		byName := map[string]*controllerv1.AgentInfo{}
		for _, a := range infos {
			byName[a.GetName()] = a
		}
		err = sealbox.SealRequest(req, func(h string) ([]byte, error) {
			a := byName[h]
			if err := sealbox.Verify(caCert, h, a.GetEncryptionKey(), a.GetEncryptionKeySig()); err != nil {
				return nil, err
			}
			return a.GetEncryptionKey(), nil
		})
		return req, time.Since(start), err
	}

	// Warm up (untimed); this also waits until the controllers have
	// recorded every agent as connected, as Submit requires.
	err = testenv.Poll(time.Minute, func() error {
		req, _, err := seal(request(names, "v0"))
		if err != nil {
			return testenv.Stop(err)
		}
		_, _, _, err = deployOnce(ctx, cl, req)
		if err != nil && !strings.Contains(err.Error(), "is not connected") {
			return testenv.Stop(err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("warm-up deploy: %w", err)
	}

	fmt.Printf("hosts=%d boot.limit=%d controllers=3 (in-process) agents in-process, runtime answers OK at once\n", *hosts, *limit)
	fmt.Printf("%-4s %8s %11s %10s %10s %12s %12s %10s %10s\n", "run", "phases", "host-steps", "total", "per host", "per step", "plan/host", "CPU/host", "seal/host")
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var totals, cpus, seals []time.Duration
	var steps int
	for i := range *runs {
		cpu0 := cpuTime()
		req, sealed, err := seal(request(names, fmt.Sprintf("v%d", i+1)))
		if err != nil {
			return fmt.Errorf("run %d: seal: %w", i+1, err)
		}
		total, phases, n, err := deployOnce(ctx, cl, req)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		total += sealed
		cpu := cpuTime() - cpu0
		steps = n
		totals, cpus, seals = append(totals, total), append(cpus, cpu), append(seals, sealed)
		fmt.Printf("%-4d %8d %11d %10s %10s %12s %12s %10s %10s\n", i+1, phases, n, ms(total), ms(total/time.Duration(*hosts)), ms(total/time.Duration(n)), us(planPerHost), ms(cpu/time.Duration(*hosts)), us(sealed/time.Duration(*hosts)))
	}
	slices.Sort(totals)
	slices.Sort(cpus)
	slices.Sort(seals)
	med, cpu, sl := totals[len(totals)/2], cpus[len(cpus)/2], seals[len(seals)/2]
	fmt.Printf("%-4s %8s %11d %10s %10s %12s %12s %10s %10s\n", "med", "", steps, ms(med), ms(med/time.Duration(*hosts)), ms(med/time.Duration(steps)), us(planPerHost), ms(cpu/time.Duration(*hosts)), us(sl/time.Duration(*hosts)))
	return detailsRuns(ctx, cl, names)
}

// detailsRuns times `kctl details`' question (LifecycleService/Details:
// every agent's containers) across all hosts, *runs times.
func detailsRuns(ctx context.Context, cl *ctlclient.Client, names []string) error {
	var totals []time.Duration
	for i := range *runs {
		start := time.Now()
		var resp *opsv1.InspectResponse
		err := cl.CallConn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
			resp, err = opsv1.NewLifecycleServiceClient(cc).Details(ctx, &opsv1.InspectRequest{Hosts: names})
			return err
		})
		if err != nil {
			return fmt.Errorf("details run %d: %w", i+1, err)
		}
		took := time.Since(start)
		for _, h := range resp.GetHosts() {
			if h.GetError() != "" || len(h.GetFacts().GetContainers()) == 0 {
				return fmt.Errorf("details run %d: %s answered %q with %d containers", i+1, h.GetHost(), h.GetError(), len(h.GetFacts().GetContainers()))
			}
		}
		totals = append(totals, took)
	}
	slices.Sort(totals)
	fmt.Printf("details across %d hosts (every agent's containers): median %s, max %s over %d runs\n", len(names), ms(totals[len(totals)/2]), ms(totals[len(totals)-1]), len(totals))
	return nil
}

// fakeContainers is what each simulated server runs: kamal-proxy and two
// roles of an app, as `details` reports them.
var fakeContainers = []*agentv1.ContainerFact{
	{Id: "0123456789ab0000", Name: "kamal-proxy", Image: "basecamp/kamal-proxy:v0.9.2", State: "running", Labels: map[string]string{"org.opencontainers.image.title": "kamal-proxy"}},
	{Id: "0123456789ab0001", Name: "app-web-v1", Image: "app:v1", State: "running", Labels: map[string]string{"service": "app", "role": "web", "destination": ""}},
	{Id: "0123456789ab0002", Name: "app-worker-v1", Image: "app:v1", State: "running", Labels: map[string]string{"service": "app", "role": "worker", "destination": ""}},
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond)) }

// request is a deploy of one proxy role over hosts.
func request(hosts []string, version string) *deployv1.Request {
	req := &deployv1.Request{
		Command: "deploy", Service: "bench", Version: version, Repository: "reg.example/bench", Image: "reg.example/bench:" + version,
		LatestTag: "latest", PrimaryRole: "web", RetainContainers: 5, Boot: &deployv1.Boot{Limit: uint32(*limit)},
		Registry: &specv1.RegistryAuth{Server: "reg.example", Username: "u", Password: "registry-password"},
	}
	web := &deployv1.Role{Name: "web", Proxy: &specv1.ProxyDeploy{Service: "bench-web", AppPort: 80}}
	for _, h := range hosts {
		web.Hosts = append(web.Hosts, &deployv1.HostContainer{Host: h, Container: &specv1.Container{
			Name: "bench-web-" + version, Image: req.Image, Service: "bench", Role: "web",
			SecretEnv: []*specv1.KeyValue{{Key: "DB_PASSWORD", Value: "hunter2"}},
		}})
		req.ProxyHosts = append(req.ProxyHosts, &deployv1.ProxyHost{Host: h, Boot: &specv1.ProxyBoot{}})
	}
	req.Roles = []*deployv1.Role{web}
	return req
}

// planningTime is the scheduler's planning time per host, averaged.
func planningTime(req *deployv1.Request) time.Duration {
	fleet := scheduler.FleetMap{}
	for _, h := range scheduler.AllHosts(req) {
		fleet[h] = scheduler.AgentConnected
	}
	const reps = 200
	start := time.Now()
	for range reps {
		if _, err := scheduler.Plan(req, fleet); err != nil {
			panic(err)
		}
	}
	return time.Since(start) / reps / time.Duration(len(req.GetRoles()[0].GetHosts()))
}

// deployOnce submits req through the deploy service and watches it to its
// end, as `kctl deploy` does.
func deployOnce(ctx context.Context, cl *ctlclient.Client, req *deployv1.Request) (time.Duration, int, int, error) {
	var final *deployv1.WatchResponse
	start := time.Now()
	err := cl.CallConn(ctx, func(ctx context.Context, conn grpc.ClientConnInterface) error {
		dc := deployv1.NewDeployServiceClient(conn)
		resp, err := dc.Submit(ctx, &deployv1.SubmitRequest{Request: req})
		if err != nil {
			return err
		}
		stream, err := dc.Watch(ctx, &deployv1.WatchRequest{Id: resp.GetDeploy().GetId()})
		if err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			final = m
		}
	})
	total := time.Since(start)
	if err != nil {
		return 0, 0, 0, err
	}
	if st := final.GetDeploy().GetState(); st != deployv1.State_STATE_SUCCEEDED {
		return 0, 0, 0, fmt.Errorf("deploy %s: %s", st, final.GetDeploy().GetError())
	}
	n := 0
	for _, ph := range final.GetDeploy().GetPlan().GetPhases() {
		n += len(ph.GetSteps())
	}
	if *verbose {
		printPhases(final)
	}
	return total, len(final.GetDeploy().GetPlan().GetPhases()), n, nil
}

// printPhases prints, per phase, the span from its first step's start to
// its last step's end, and the gap before the phase.
func printPhases(w *deployv1.WatchResponse) {
	byID := map[string]*deployv1.StepRecord{}
	for _, s := range w.GetSteps() {
		byID[s.GetStepId()] = s
	}
	prev := w.GetDeploy().GetCreatedUnixMillis()
	for _, ph := range w.GetDeploy().GetPlan().GetPhases() {
		var first, last int64
		for _, s := range ph.GetSteps() {
			sr := byID[s.GetId()]
			if first == 0 || sr.GetStartedUnixMillis() < first {
				first = sr.GetStartedUnixMillis()
			}
			last = max(last, sr.GetFinishedUnixMillis())
		}
		fmt.Fprintf(os.Stderr, "  %-10s gap %4dms  span %4dms\n", ph.GetName(), first-prev, last-first)
		prev = last
	}
	fmt.Fprintf(os.Stderr, "  end        gap %4dms\n", w.GetDeploy().GetFinishedUnixMillis()-prev)
}
