package controller_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func noop(p string) *agentv1.Operation {
	return &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: p}}}
}

func agents(t testing.TB, tc *testCluster) map[string]*controllerv1.AgentInfo {
	t.Helper()
	out := map[string]*controllerv1.AgentInfo{}
	err := tc.AdminClient().Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		r, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
		for _, a := range r.GetAgents() {
			out[a.GetName()] = a
		}
		return err
	})
	if err != nil {
		t.Fatalf("ListAgents = %v", err)
	}
	return out
}

func TestSession_CommandsReachAgentPinnedToFollower(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	f := tc.Follower()
	rt := &countingRuntime{}
	tc.startAgent("web-1", rt, f) // knows only a follower's address
	waitFor(t, 10*time.Second, "web-1 connected", func() error {
		if a := agents(t, tc)["web-1"]; a.GetStatus() != "connected" {
			return fmt.Errorf("web-1 = %v", a)
		}
		return nil
	})
	// Sent through the leader, delivered by the follower holding the session.
	l := tc.Nodes[tc.Leader()].C
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := l.SendCommand(ctx, "web-1", noop("hello"))
	if err != nil {
		t.Fatalf("SendCommand = %v", err)
	}
	rec, err := l.WaitResult(ctx, id)
	if err != nil {
		t.Fatalf("WaitResult = %v", err)
	}
	if got, want := rec.GetController(), tc.Nodes[f].Name; got != want {
		t.Errorf("result recorded by %s, want %s (the session holder)", got, want)
	}
	if got := rt.count("hello"); got != 1 {
		t.Errorf("runs of the command = %d, want 1", got)
	}
}

func TestSession_FailoverDeliversOnceAndKeepsAgentsConnected(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.Leader()
	rt1, rt2 := &countingRuntime{}, &countingRuntime{}
	// web-1 sits on the leader, web-2 on a follower; both know every node.
	order := []int{leader, (leader + 1) % 3, (leader + 2) % 3}
	a1 := tc.startAgent("web-1", rt1, order...)
	tc.startAgent("web-2", rt2, order[1], order[2], order[0])
	waitFor(t, 10*time.Second, "both agents connected", func() error {
		as := agents(t, tc)
		for _, n := range []string{"web-1", "web-2"} {
			if as[n].GetStatus() != "connected" {
				return fmt.Errorf("%s = %v", n, as[n])
			}
		}
		return nil
	})
	if a1.Connected() != tc.Nodes[leader].API {
		t.Fatalf("web-1 connected to %s, want the leader %s", a1.Connected(), tc.Nodes[leader].API)
	}
	// Kill the leader, which holds web-1's session, and send commands to
	// both agents through a survivor while the cluster fails over.
	survivor := tc.Nodes[order[1]].C
	tc.Kill(leader)
	if as := agents(t, tc); as["web-2"].GetStatus() != "connected" || as["web-1"].GetStatus() != "connected" {
		t.Errorf("right after the leader died: %v, want both still shown connected (grace)", as)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, name := range []string{"web-1", "web-2"} {
		wg.Go(func() {
			id, err := survivor.SendCommand(ctx, name, noop("during-failover"))
			if err != nil {
				errs <- fmt.Errorf("SendCommand(%s) = %w", name, err)
				return
			}
			rec, err := survivor.WaitResult(ctx, id)
			if err != nil {
				errs <- fmt.Errorf("WaitResult(%s) = %w", name, err)
				return
			}
			if !rec.GetResult().GetOk() {
				errs <- fmt.Errorf("%s result = %v", name, rec.GetResult())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for name, rt := range map[string]*countingRuntime{"web-1": rt1, "web-2": rt2} {
		if got := rt.count("during-failover"); got != 1 {
			t.Errorf("%s ran the command %d times, want 1", name, got)
		}
	}
	waitFor(t, 10*time.Second, "both agents connected to survivors", func() error {
		as := agents(t, tc)
		// The agent on a surviving follower never looks down.
		if as["web-2"].GetStatus() != "connected" {
			t.Errorf("web-2 shown %s during the failover, want connected throughout", as["web-2"].GetStatus())
		}
		for _, n := range []string{"web-1", "web-2"} {
			if as[n].GetStatus() != "connected" || as[n].GetController() == tc.Nodes[leader].Name {
				return fmt.Errorf("%s = %v", n, as[n])
			}
		}
		return nil
	})
}

func TestSession_StatusFollowsConnectAndDisconnect(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	_, stop := tc.startAgentStop("web-1", &countingRuntime{}, 0)
	tc.startAgent("web-2", &countingRuntime{}, 0)
	waitFor(t, 10*time.Second, "web-1 connected", func() error {
		if a := agents(t, tc)["web-1"]; a.GetStatus() != "connected" {
			return fmt.Errorf("web-1 = %v", a)
		}
		return nil
	})
	stop()
	start := time.Now()
	waitFor(t, 3*tc.HeartbeatInterval+2*time.Second, "web-1 disconnected", func() error {
		if a := agents(t, tc)["web-1"]; a.GetStatus() != "disconnected" || a.GetLastSeenUnixMillis() == 0 {
			return fmt.Errorf("web-1 = %v", a)
		}
		return nil
	})
	t.Logf("disconnect visible after %s", time.Since(start))
	// Removing an agent revokes it and ends its session at once.
	err := tc.AdminClient().Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.RemoveAgent(ctx, &controllerv1.RemoveAgentRequest{Name: "web-2"})
		return err
	})
	if err != nil {
		t.Fatalf("RemoveAgent = %v", err)
	}
	if _, ok := agents(t, tc)["web-2"]; ok {
		t.Fatal("web-2 still listed after RemoveAgent")
	}
}
