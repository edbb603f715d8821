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
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kctl-dev/kctl/bench/internal/benchenv"
	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/controller"
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
	fmt.Printf("%-6s %16s %14s %10s %10s %10s %11s %14s\n", "N", "session KiB/agt", "total KiB/agt", "ack p50", "ack p99", "ack all", "new leader", "reconnect all")
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		r, err := benchN(n)
		if err != nil {
			return fmt.Errorf("N=%d: %w", n, err)
		}
		fmt.Printf("%-6d %16.1f %14.1f %10s %10s %10s %11s %14s\n", n, r.sessionKiB, r.kibPerAgent, r.p50, r.p99, r.all, r.newLeader, r.reconnect)
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
	reconnect, newLeader    time.Duration
}

func heap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// spine is one benchmark run: n agents in a child process connected to a
// 3-node cluster in this one.
type spine struct {
	n       int
	dir     string
	cluster *benchenv.Cluster
	// nodes are the live controllers.
	nodes []*controller.Controller
	token string
	// stopChild stops the agents' child process.
	stopChild func()
}

func benchN(n int) (result, error) {
	var r result
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "kctl-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	cluster, err := benchenv.StartCluster(ctx, benchenv.Config{Dir: dir, N: 3, Raft: func(c *raftstore.Config) {
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	}})
	if err != nil {
		return r, err
	}
	defer cluster.Close()
	s := &spine{n: n, dir: dir, cluster: cluster, nodes: cluster.Nodes}
	if s.token, err = cluster.Token(ctx, controllerv1.Role_ROLE_AGENT, uint32(n)); err != nil {
		return r, err
	}
	defer func() {
		if s.stopChild != nil {
			s.stopChild()
		}
	}()
	if r.kibPerAgent, r.sessionKiB, err = s.memory(); err != nil {
		return r, err
	}
	leader, err := s.leader()
	if err != nil {
		return r, err
	}
	if r.p50, r.p99, r.all, err = s.fanOut(ctx, leader); err != nil {
		return r, err
	}
	r.newLeader, r.reconnect, err = s.reconnect(leader)
	return r, err
}

// startChild starts the agents in a child process, so this process's
// memory is the controllers' alone, and returns once they all have a
// session.
func (s *spine) startChild() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-agents-child", "-addrs", strings.Join(s.cluster.Addrs(), ","), "-token", s.token,
		"-count", strconv.Itoa(s.n), "-prefix", "a", "-dir", filepath.Join(s.dir, "agents"))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.stopChild = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		s.stopChild()
		return fmt.Errorf("agents child failed")
	}
	return s.waitSessions(5*time.Minute, s.n)
}

// sessions counts the agent sessions the live controllers hold.
func (s *spine) sessions() int {
	t := 0
	for _, c := range s.nodes {
		t += c.Sessions()
	}
	return t
}

// waitSessions waits until the live controllers hold want sessions.
func (s *spine) waitSessions(timeout time.Duration, want int) error {
	if err := poll(timeout, func() bool { return s.sessions() == want }); err != nil {
		return fmt.Errorf("sessions %d, want %d: %w", s.sessions(), want, err)
	}
	return nil
}

// memory measures the controllers' memory per connected agent, in total
// and of the sessions alone (by disconnecting every agent); the agents are
// connected again when it returns without an error.
func (s *spine) memory() (perAgent, perSession float64, err error) {
	before := heap()
	if err := s.startChild(); err != nil {
		return 0, 0, err
	}
	// Let the join and facts writes settle before measuring.
	time.Sleep(2 * time.Second)
	after := heap()
	if *memprofile != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", *memprofile, s.n))
		if err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		fmt.Fprintf(os.Stderr, "goroutines: %d\n", runtime.NumGoroutine())
	}
	perAgent = float64(int64(after)-int64(before)) / 1024 / float64(s.n)
	s.stopChild()
	if err := s.waitSessions(time.Minute, 0); err != nil {
		return 0, 0, err
	}
	time.Sleep(2 * time.Second) // let presence settle before measuring
	perSession = float64(int64(after)-int64(heap())) / 1024 / float64(s.n)
	return perAgent, perSession, s.startChild()
}

// leader returns the leading controller.
func (s *spine) leader() (*controller.Controller, error) {
	var leader *controller.Controller
	err := poll(time.Minute, func() bool {
		for _, c := range s.nodes {
			if c.IsLeader() {
				leader = c
			}
		}
		return leader != nil
	})
	if err != nil {
		return nil, fmt.Errorf("no leader: %w", err)
	}
	return leader, nil
}

// fanOut has the leader send one Noop to every agent, recorded in Raft in
// few entries, and returns the times until half, 99% and all were acknowledged.
func (s *spine) fanOut(ctx context.Context, leader *controller.Controller) (p50, p99, all time.Duration, err error) {
	names := make([]string, s.n)
	for i := range names {
		names[i] = fmt.Sprintf("a-%05d", i)
	}
	ch, stop := leader.Store().Watch()
	defer stop()
	start := time.Now()
	ids, err := leader.Broadcast(ctx, names, &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: "bench"}}})
	if err != nil {
		return 0, 0, 0, err
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
			return 0, 0, 0, fmt.Errorf("%d of %d commands unacknowledged", len(pending), s.n)
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
	return lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), nil
}

// reconnect stops the leader and returns the times until a survivor leads
// and until every agent holds a session on a survivor again.
func (s *spine) reconnect(leader *controller.Controller) (newLeader, all time.Duration, err error) {
	var rest []*controller.Controller
	for _, c := range s.nodes {
		if c != leader {
			rest = append(rest, c)
		}
	}
	start := time.Now()
	leader.Close()
	s.nodes = rest
	if err := poll(time.Minute, func() bool { return slices.ContainsFunc(rest, (*controller.Controller).IsLeader) }); err != nil {
		return 0, 0, fmt.Errorf("electing a new leader: %w", err)
	}
	newLeader = time.Since(start).Round(time.Millisecond)
	if err := s.waitSessions(5*time.Minute, s.n); err != nil {
		return 0, 0, fmt.Errorf("reconnecting: %w", err)
	}
	return newLeader, time.Since(start).Round(time.Millisecond), nil
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
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	agents, err := benchenv.StartAgents(context.Background(), addrs, token, count, func(i int) agent.Config {
		return agent.Config{Name: fmt.Sprintf("%s-%05d", prefix, i), DataDir: filepath.Join(dataDir, strconv.Itoa(i)),
			Runtime: &agent.FakeRuntime{}, Version: "bench", Logger: logger, DialTimeout: 30 * time.Second}
	})
	if err != nil {
		return err
	}
	defer agents.Stop()
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signalNotify(sig)
	<-sig
	return nil
}
