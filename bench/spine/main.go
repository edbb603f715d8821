// Command spine benchmarks agent sessions: N simulated agents (the real
// agent session code over real mutual TLS, with a fake runtime, in a child
// process) connect to a 3-node controller cluster running in this process.
// For each N it prints the controller memory per connected agent, the time
// for one command fanned out to all N agents to be acknowledged (p50, p99,
// all), and the time for all N to reconnect after the leader is stopped.
//
//	go run ./bench/spine -n 100,1000,5000
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/testenv"
)

var memprofile = flag.String("memprofile", "", "write a heap profile (per N) after the agents connect")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	ns := flag.String("n", "100,1000", "agent counts, comma-separated")
	child := flag.Bool("agents-child", false, "internal: run agents")
	addrs := flag.String("addrs", "", "internal: controller addresses")
	token := flag.String("token", "", "internal: agent token")
	prefix := flag.String("prefix", "a", "internal: agent name prefix")
	agentsDir := flag.String("dir", "", "internal: agents' data dirs")
	count := flag.Int("count", 0, "internal: agents to run")
	flag.Parse()
	raiseFDLimit()
	if *child {
		return runAgents(strings.Split(*addrs, ","), *token, *prefix, *agentsDir, *count)
	}
	fmt.Printf("%-6s %16s %14s %10s %10s %10s %14s\n", "N", "session KiB/agt", "total KiB/agt", "ack p50", "ack p99", "ack all", "reconnect all")
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		r, err := benchN(n)
		if err != nil {
			return fmt.Errorf("N=%d: %w", n, err)
		}
		fmt.Printf("%-6d %16.1f %14.1f %10s %10s %10s %14s\n", n, r.sessionKiB, r.kibPerAgent, r.p50, r.p99, r.all, r.reconnect)
	}
	return nil
}

func raiseFDLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

type result struct {
	kibPerAgent, sessionKiB float64
	p50, p99, all           time.Duration
	reconnect               time.Duration
}

type node struct {
	cfg controller.Config
	c   *controller.Controller
}

func startNode(ctx context.Context, dir, name string, init bool, join []string, token string) (*controller.Controller, error) {
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return controller.Start(ctx, controller.Config{
		Name: name, DataDir: filepath.Join(dir, name), APIListener: api, RaftListener: rl,
		Init: init, JoinAddrs: join, Token: token,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Raft: func(c *raftstore.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
		},
	})
}

func heap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func benchN(n int) (result, error) {
	var r result
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "kctl-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)

	c1, err := startNode(ctx, dir, "c1", true, nil, "")
	if err != nil {
		return r, err
	}
	nodes := []*controller.Controller{c1}
	defer func() {
		for _, c := range nodes {
			c.Close()
		}
	}()
	admin, err := ctlclient.LoadFile(filepath.Join(dir, "c1", "admin.kctl.yaml"))
	if err != nil {
		return r, err
	}
	creds, err := admin.Credentials()
	if err != nil {
		return r, err
	}
	cl := ctlclient.NewClient(creds, []string{c1.APIAddress()}, 5*time.Second)
	mkToken := func(role controllerv1.Role, uses uint32) (string, error) {
		var tok string
		err := cl.Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			resp, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: role, Uses: uses, TtlSeconds: 3600})
			tok = resp.GetToken()
			return err
		})
		return tok, err
	}
	ctok, err := mkToken(controllerv1.Role_ROLE_CONTROLLER, 2)
	if err != nil {
		return r, err
	}
	for _, name := range []string{"c2", "c3"} {
		c, err := startNode(ctx, dir, name, false, []string{c1.APIAddress()}, ctok)
		if err != nil {
			return r, err
		}
		nodes = append(nodes, c)
	}
	atok, err := mkToken(controllerv1.Role_ROLE_AGENT, uint32(n))
	if err != nil {
		return r, err
	}
	var addrs []string
	for _, c := range nodes {
		addrs = append(addrs, c.APIAddress())
	}
	before := heap()

	// The agents run in a child process so this process's memory is the
	// controllers' alone.
	self, err := os.Executable()
	if err != nil {
		return r, err
	}
	startChild := func() (func(), error) {
		cmd := exec.Command(self, "-agents-child", "-addrs", strings.Join(addrs, ","), "-token", atok, "-count", strconv.Itoa(n), "-prefix", "a", "-dir", filepath.Join(dir, "agents"))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			stop()
			return nil, fmt.Errorf("agents child failed")
		}
		return stop, nil
	}
	stopChild, err := startChild()
	if err != nil {
		return r, err
	}
	defer func() { stopChild() }()
	sessions := func(cs []*controller.Controller) int {
		t := 0
		for _, c := range cs {
			t += c.Sessions()
		}
		return t
	}
	if err := poll(5*time.Minute, func() bool { return sessions(nodes) == n }); err != nil {
		return r, fmt.Errorf("sessions %d of %d: %w", sessions(nodes), n, err)
	}
	// Let the join and facts writes settle before measuring.
	time.Sleep(2 * time.Second)
	after := heap()
	if *memprofile != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", *memprofile, n))
		if err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		fmt.Fprintf(os.Stderr, "goroutines: %d\n", runtime.NumGoroutine())
	}
	r.kibPerAgent = float64(int64(after)-int64(before)) / 1024 / float64(n)

	// Session memory alone: disconnect every agent, measure, reconnect.
	stopChild()
	if err := poll(time.Minute, func() bool { return sessions(nodes) == 0 }); err != nil {
		return r, fmt.Errorf("sessions did not end: %w", err)
	}
	time.Sleep(2 * time.Second) // let presence settle before measuring
	idle := heap()
	r.sessionKiB = float64(int64(after)-int64(idle)) / 1024 / float64(n)
	if stopChild, err = startChild(); err != nil {
		return r, err
	}
	if err := poll(5*time.Minute, func() bool { return sessions(nodes) == n }); err != nil {
		return r, fmt.Errorf("sessions %d of %d after restart: %w", sessions(nodes), n, err)
	}

	// Fan-out: one Noop to every agent, recorded in Raft in few entries.
	var leader *controller.Controller
	if err := poll(time.Minute, func() bool {
		for _, c := range nodes {
			if c.IsLeader() {
				leader = c
			}
		}
		return leader != nil
	}); err != nil {
		return r, fmt.Errorf("no leader: %w", err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("a-%05d", i)
	}
	ch, stop := leader.Store().Watch()
	defer stop()
	start := time.Now()
	ids, err := leader.Broadcast(ctx, names, &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: "bench"}}})
	if err != nil {
		return r, err
	}
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	var lat []time.Duration
	deadline := time.After(5 * time.Minute)
	for len(pending) > 0 {
		select {
		case <-ch:
		case <-deadline:
			return r, fmt.Errorf("%d of %d commands unacknowledged", len(pending), n)
		}
		el := time.Since(start)
		for _, rec := range leader.Store().List("commands", "") {
			var c controllerv1.CommandRecord
			if proto.Unmarshal(rec.Value, &c) != nil || !pending[c.GetId()] || c.GetState() != controllerv1.CommandState_COMMAND_STATE_DONE {
				continue
			}
			delete(pending, c.GetId())
			lat = append(lat, el)
		}
	}
	slices.Sort(lat)
	r.p50, r.p99, r.all = lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond)

	// Reconnection: stop the leader; every agent must hold a session on a
	// survivor again.
	var rest []*controller.Controller
	for _, c := range nodes {
		if c != leader {
			rest = append(rest, c)
		}
	}
	start = time.Now()
	leader.Close()
	nodes = rest
	if err := poll(5*time.Minute, func() bool { return sessions(rest) == n }); err != nil {
		return r, fmt.Errorf("reconnected %d of %d: %w", sessions(rest), n, err)
	}
	r.reconnect = time.Since(start).Round(time.Millisecond)
	return r, nil
}

// poll waits until cond holds, checking every 5ms: the reconnect time is
// measured with it.
func poll(timeout time.Duration, cond func() bool) error {
	return testenv.PollEvery(timeout, 5*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errors.New("condition false")
	})
}

// runAgents joins and runs count agents in this (child) process and prints
// "ready" once all have a session.
func runAgents(addrs []string, token, prefix, dataDir string, count int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	agents := make([]*agent.Agent, count)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var failed atomic.Value
	for i := range count {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// Spread the agents over the controllers as a load balancer would.
			rot := append(slices.Clone(addrs[i%len(addrs):]), addrs[:i%len(addrs)]...)
			a, err := agent.New(ctx, agent.Config{
				Name: fmt.Sprintf("%s-%05d", prefix, i), DataDir: filepath.Join(dataDir, strconv.Itoa(i)), Controllers: rot,
				Token: token, Runtime: &agent.FakeRuntime{}, Version: "bench", Logger: logger,
				DialTimeout: 30 * time.Second,
			})
			if err != nil {
				failed.Store(err)
				return
			}
			agents[i] = a
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return err
	}
	for _, a := range agents {
		go a.Run(ctx)
	}
	if err := poll(5*time.Minute, func() bool {
		for _, a := range agents {
			if a.Sessions() == 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signalNotify(sig)
	<-sig
	return nil
}
