package controller_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/agent/exec"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// countingRuntime answers Noop and GatherFacts and counts Noop runs per
// payload (the effect counter of the delivery tests); ops records every
// operation it was given.
type countingRuntime struct {
	mu   sync.Mutex
	runs map[string]int
	ops  []*agentv1.Operation
	fake agent.FakeRuntime
}

var _ exec.Runtime = (*countingRuntime)(nil)

func (r *countingRuntime) Do(ctx context.Context, op *agentv1.Operation) (*agentv1.Result, error) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
	if n := op.GetNoop(); n != nil {
		r.mu.Lock()
		if r.runs == nil {
			r.runs = map[string]int{}
		}
		r.runs[n.GetPayload()]++
		r.mu.Unlock()
	}
	return r.fake.Do(ctx, op)
}

func (r *countingRuntime) count(payload string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[payload]
}

func listTokens(t testing.TB, tc *testCluster, nodes ...int) []string {
	t.Helper()
	var ids []string
	err := tc.AdminClient(nodes...).Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		r, err := cc.ListTokens(ctx, &controllerv1.ListTokensRequest{})
		for _, tk := range r.GetTokens() {
			ids = append(ids, tk.GetId())
		}
		return err
	})
	if err != nil {
		t.Fatalf("ListTokens = %v", err)
	}
	slices.Sort(ids)
	return ids
}

func TestCluster_WritesThroughAnyNodeSurviveLeaderLoss(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	// Write through every node, followers included: they forward.
	for i := range 3 {
		c := tc.AdminClient(i)
		if err := c.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT, Uses: 5})
			return err
		}); err != nil {
			t.Fatalf("CreateToken via %s = %v", tc.Nodes[i].Name, err)
		}
	}
	before := listTokens(t, tc)
	if len(before) != 3 {
		t.Fatalf("tokens after 3 writes = %d, want 3", len(before))
	}
	old := tc.Leader()
	tc.Kill(old)
	nl := tc.Leader()
	if nl == old {
		t.Fatalf("leader after kill = %d, want another", nl)
	}
	var live []int
	for i := range 3 {
		if i != old {
			live = append(live, i)
		}
	}
	// Every earlier write is there, read through each survivor.
	for _, i := range live {
		if got := listTokens(t, tc, i); !slices.Equal(got, before) {
			t.Fatalf("tokens via %s after failover = %v, want %v", tc.Nodes[i].Name, got, before)
		}
	}
	// And the survivors still accept writes through either node.
	for _, i := range live {
		if err := tc.AdminClient(i).Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT})
			return err
		}); err != nil {
			t.Fatalf("CreateToken via %s after failover = %v", tc.Nodes[i].Name, err)
		}
	}
}

func TestCluster_FullRestartLosesNothing(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	rt := &countingRuntime{}
	tc.startAgent("web-1", rt, 1)
	for range 5 {
		tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour)
	}
	before := listTokens(t, tc)
	tc.KillAll()
	for i := range 3 {
		tc.Restart(i)
	}
	tc.Leader()
	if got := listTokens(t, tc); !slices.Equal(got, before) {
		t.Fatalf("tokens after restart = %v, want %v", got, before)
	}
	// The agent reconnects with its stored certificate and gets commands.
	l := tc.Nodes[tc.Leader()].C
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := l.SendCommand(ctx, "web-1", &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: "after-restart"}}})
	if err != nil {
		t.Fatalf("SendCommand = %v", err)
	}
	rec, err := l.WaitResult(ctx, id)
	if err != nil {
		t.Fatalf("WaitResult = %v", err)
	}
	if !rec.GetResult().GetOk() || rec.GetResult().GetDetail() != "after-restart" {
		t.Fatalf("result = %v, want ok with the payload", rec.GetResult())
	}
}

func TestCluster_LaggingNodeRestoresFromSnapshot(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *raftstore.Config) {
		c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = 16, 4, 100*time.Millisecond
	})
	lagger := tc.Follower()
	tc.Kill(lagger)
	for range 40 {
		tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour)
	}
	l := tc.Nodes[tc.Leader()].C
	if err := l.Store().Snapshot(); err != nil {
		t.Fatalf("Snapshot = %v", err)
	}
	want := listTokens(t, tc)
	tc.Restart(lagger)
	st := tc.Nodes[lagger].C.Store()
	waitFor(t, 20*time.Second, "the lagging node to catch up", func() error {
		if got := len(st.List("tokens", "")); got < len(want) {
			return fmt.Errorf("lagging node holds %d tokens, want %d", got, len(want))
		}
		return nil
	})
	var got []string
	for _, r := range st.List("tokens", "") {
		got = append(got, r.Key)
	}
	for _, id := range want {
		if !slices.Contains(got, id) {
			t.Fatalf("lagging node lacks token %s after restore", id)
		}
	}
}

func TestCluster_AddAndRemoveController(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	a := tc.startAgent("web-1", &countingRuntime{}, 2, 0, 1)
	waitFor(t, 10*time.Second, "web-1 on c3", func() error {
		if a.Connected() != tc.Nodes[2].API {
			return fmt.Errorf("web-1 connected to %q", a.Connected())
		}
		return nil
	})
	err := tc.AdminClient().Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.RemoveController(ctx, &controllerv1.RemoveControllerRequest{Name: "c3"})
		return err
	})
	if err != nil {
		t.Fatalf("RemoveController(c3) = %v", err)
	}
	var st *controllerv1.ClusterStatusResponse
	err = tc.AdminClient(0, 1).Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		st, err = cc.ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetNodes()) != 2 {
		t.Fatalf("nodes after removing c3 = %v, want 2", st.GetNodes())
	}
	// The removed controller's certificate no longer works.
	err = tc.Client(tc.Nodes[2].C.Credentials(), 0).Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{})
		return err
	})
	if err == nil {
		t.Fatal("ClusterStatus with the removed controller's certificate succeeded, want refused")
	}
	// The removed controller hands its agent over to the others.
	waitFor(t, 10*time.Second, "web-1 to move off c3", func() error {
		if got := a.Connected(); got == "" || got == tc.Nodes[2].API {
			return fmt.Errorf("web-1 connected to %q", got)
		}
		return nil
	})
}
