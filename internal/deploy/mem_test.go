package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// memStore is a deploy.Store over a raftstore.MemStore (the real FSM, no
// Raft): the leader's view, where every read is linearizable.
type memStore struct{ *raftstore.MemStore }

var _ deploy.Store = memStore{}

func (m memStore) Write(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	return m.Apply(ctx, cmd)
}

func (m memStore) Sync(ctx context.Context) error { return ctx.Err() }

// memHarness runs a Runner over a MemStore with a fake clock: tests drive
// its timers (step deadlines, the disconnect grace, the loop that releases
// stale locks) by advancing the clock.
type memHarness struct {
	store  memStore
	agents *fakeAgents
	clock  *clock.Fake
	cancel context.CancelFunc
	done   chan struct{}
}

// newMemHarness returns a harness whose Runner is not started yet (start).
func newMemHarness(t testing.TB, agents *fakeAgents) *memHarness {
	h := &memHarness{store: memStore{raftstore.NewMemStore()}, agents: agents, clock: clock.NewFake(time.Now())}
	agents.locate = func(agent string, op *agentv1.Operation) []string { return locateSteps(h.store, agent, op) }
	// A result wakes the steps waiting for it, as a real result's write
	// would through the store.
	agents.notify = func() { h.clock.Advance(250 * time.Millisecond) }
	t.Cleanup(h.stop)
	return h
}

// start starts the Runner.
func (h *memHarness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	r := &deploy.Runner{Store: h.store, Agents: h.agents, Clock: h.clock, DisconnectGrace: 30 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	go func() {
		defer close(h.done)
		r.Run(ctx)
	}()
}

func (h *memHarness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

func (h *memHarness) service(operator string) *deploy.Service {
	return &deploy.Service{Store: h.store, Agents: h.agents,
		Caller: func(context.Context) (string, error) { return operator, nil }}
}

// advanceUntil moves the fake clock by step until cond holds, failing the
// test after a real-time deadline.
func (h *memHarness) advanceUntil(t testing.TB, step time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s (fake clock at +%s): %v", what, time.Until(h.clock.Now()).Round(time.Second), err)
		}
		h.clock.Advance(step)
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// waitDeploy waits (advancing the clock by a second) until the deploy ends.
func (h *memHarness) waitDeploy(t testing.TB, id string) *deployv1.GetResponse {
	t.Helper()
	var resp *deployv1.GetResponse
	h.advanceUntil(t, time.Second, "deploy "+id+" to end", func() error {
		var err error
		resp, err = h.service("x").Get(context.Background(), &deployv1.GetRequest{Id: id})
		if err != nil {
			return err
		}
		if !deploy.Ended(resp.GetDeploy().GetState()) {
			return fmt.Errorf("deploy is %v", resp.GetDeploy().GetState())
		}
		return nil
	})
	return resp
}

// holding reports every table and key of the store whose key or value
// holds one of secrets, skipping the tables in except.
func holding(r *raftstore.Snapshot, secrets []string, except ...string) []string {
	var out []string
	r.Each(func(table string, rec raftstore.Record) bool {
		for _, e := range except {
			if table == e {
				return true
			}
		}
		for _, s := range secrets {
			if strings.Contains(rec.Key, s) || strings.Contains(string(rec.Value), s) {
				out = append(out, fmt.Sprintf("%s/%s holds %q", table, rec.Key, s))
			}
		}
		return true
	})
	return out
}

// watchStream collects what Watch sends.
type watchStream struct {
	grpc.ServerStream
	ctx  context.Context
	mu   sync.Mutex
	sent []*deployv1.WatchResponse
}

var _ grpc.ServerStreamingServer[deployv1.WatchResponse] = (*watchStream)(nil)

func (w *watchStream) Context() context.Context { return w.ctx }

func (w *watchStream) Send(r *deployv1.WatchResponse) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent = append(w.sent, r)
	return nil
}

// putRecords writes records as they would be left behind (tests of the
// leader's clean-up).
func putRecords(t testing.TB, s memStore, muts ...*raftcmdv1.Mutation) {
	t.Helper()
	if _, err := s.Write(context.Background(), &raftcmdv1.Command{Mutations: muts}); err != nil {
		t.Fatal(err)
	}
}
