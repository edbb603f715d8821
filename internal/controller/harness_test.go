package controller_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// testCluster is a controllertest.Cluster with the agents these tests run.
type testCluster struct {
	*controllertest.Cluster
	t testing.TB
	// lastToken is the last token mustToken made.
	lastToken string
}

// newTestCluster starts n controllers (controllertest.NewCluster).
func newTestCluster(t testing.TB, n int, tweak func(*raftstore.Config)) *testCluster {
	t.Helper()
	return &testCluster{Cluster: controllertest.NewCluster(t, n, controllertest.WithRaft(tweak)), t: t}
}

var waitFor = controllertest.WaitFor

// startAgent joins and runs an in-process agent with a fake runtime.
func (tc *testCluster) startAgent(name string, rt *countingRuntime, nodes ...int) *agent.Agent {
	a, _ := tc.startAgentStop(name, rt, nodes...)
	return a
}

// startAgentStop is startAgent that also returns a func stopping the agent.
func (tc *testCluster) startAgentStop(name string, rt *countingRuntime, nodes ...int) (*agent.Agent, func()) {
	return tc.startAgentWith(name, rt, nil, nodes...)
}

// startAgentWith is startAgentStop with tweak applied to the agent's
// config (its clock, say).
func (tc *testCluster) startAgentWith(name string, rt *countingRuntime, tweak func(*agent.Config), nodes ...int) (*agent.Agent, func()) {
	t := tc.t
	t.Helper()
	var addrs []string
	for _, i := range nodes {
		addrs = append(addrs, tc.Nodes[i].API)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := agent.Config{
		Name: name, DataDir: filepath.Join(t.TempDir(), name), Controllers: addrs,
		Token: tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour), Runtime: rt, Version: "test",
		Logger: tc.Logger.With("agent", name), MaxBackoff: time.Second, DialTimeout: 2 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := agent.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("agent.New(%s) = %v", name, err)
		return nil, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return a, stop
}
