package controller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/pki"
)

// Presence goes to Raft only when it changes: while an idle agent stays
// connected (heartbeats and all) no controller writes anything, on a
// cluster whose presence was recorded every 300 ms before.
func TestPresence_NotRewrittenWhileNothingChanges(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.startAgent("web-1", &countingRuntime{}, tc.Follower())
	waitFor(t, 10*time.Second, "web-1 connected", func() error {
		if a := agents(t, tc)["web-1"]; a.GetStatus() != "connected" {
			return fmt.Errorf("web-1 = %v", a)
		}
		return nil
	})
	l := tc.Nodes[tc.Leader()].C.Store()
	// Settle: the connect's presence and facts writes land.
	var idx uint64
	waitFor(t, 10*time.Second, "the writes of the connect to settle", func() error {
		before := l.AppliedIndex()
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if l.AppliedIndex() != before {
				return fmt.Errorf("applied index moved past %d", before)
			}
			time.Sleep(50 * time.Millisecond)
		}
		idx = before
		return nil
	})
	// 3 s: ten presence intervals and several heartbeats.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if got := l.AppliedIndex(); got != idx {
			t.Fatalf("applied index moved from %d to %d while the agent idled (presence rewritten?)", idx, got)
		}
	}
	if a := agents(t, tc)["web-1"]; a.GetStatus() != "connected" {
		t.Errorf("web-1 = %v after idling, want connected", a)
	}
}

// Join answers a token it refused from memory (no read on the leader, no
// rate-limit token spent), and bounds the rest.
func TestJoin_FloodIsAnsweredFromMemoryAndRateLimited(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	tok, err := pki.ParseToken(tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Rotations of the real secret: well-formed, unknown tokens.
	unknown := func(i int) string {
		s := tok.Secret
		k := 1 + i%(len(s)-1)
		r := s[k:] + s[:k]
		if i >= len(s)-1 {
			r = reverse(r)
		}
		return pki.Token{CADigest: tok.CADigest, Secret: r}.String()
	}
	join := func(token string) error {
		return tc.AdminClient().Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			_, err := cc.Join(ctx, &controllerv1.JoinRequest{Token: token, Name: "x"})
			return err
		})
	}
	if err := join(unknown(0)); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Join(unknown token) = %v, want Unauthenticated", err)
	}
	// 100 more of the same, beyond any rate limit: refused from memory.
	for i := range 100 {
		if err := join(unknown(0)); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Join(the same unknown token) #%d = %v, want Unauthenticated from memory", i, err)
		}
	}
	// Fresh unknown tokens reach the store at a bounded rate.
	limited := 0
	for i := 1; i < 60; i++ {
		if err := join(unknown(i)); status.Code(err) == codes.ResourceExhausted {
			limited++
		} else if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Join(fresh unknown token) = %v", err)
		}
	}
	if limited == 0 {
		t.Errorf("59 Joins with fresh unknown tokens from one address: none rate-limited")
	}
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// A controller that lost touch with the leader (here: the other two are
// gone) refuses operators rather than answer from a state that may miss a
// revocation.
func TestLimits_StaleControllerRefusesOperators(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	f := tc.Follower()
	for i := range tc.Nodes {
		if i != f {
			tc.Kill(i)
		}
	}
	cl := tc.AdminClient(f)
	waitFor(t, 20*time.Second, "the lone follower to refuse operators", func() error {
		err := cl.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			_, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
			return err
		})
		// (kctl's client tries the dead ones too, and says why each failed.)
		if err == nil || !strings.Contains(err.Error(), "is not in touch with the cluster's leader") {
			return fmt.Errorf("ListAgents = %v, want refused as not current", err)
		}
		return nil
	})
}

// Every message has a size limit, with a clear error.
func TestLimits_OversizedRequestIsRefused(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	err := tc.AdminClient().Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.DescribeAgent(ctx, &controllerv1.DescribeAgentRequest{Name: strings.Repeat("a", 100<<10)})
		return err
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "over the limit of 65536") {
		t.Errorf("DescribeAgent(100 KiB name) = %v, want InvalidArgument over the limit", err)
	}
}
