package controller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/schema"
)

// fakeClockCluster is a one-controller cluster whose safety timers run on
// a fake clock.
func fakeClockCluster(t testing.TB) (*testCluster, *clock.Fake) {
	clk := clock.NewFake(time.Now())
	return &testCluster{Cluster: controllertest.NewCluster(t, 1, controllertest.WithClock(clk)), t: t}, clk
}

// gcPass moves the clock to start+at and waits for the garbage collector's
// pass at that time: a presence record of no controller, written first, is
// deleted by the same write as everything else due then.
func gcPass(t testing.TB, tc *testCluster, clk *clock.Fake, start time.Time, at time.Duration) {
	t.Helper()
	c := tc.Nodes[0].C
	if _, err := c.Store().Apply(context.Background(), &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{
		schema.Presence.Put("ghost", &controllerv1.PresenceRecord{Controller: "ghost"})}}); err != nil {
		t.Fatal(err)
	}
	clk.Set(start.Add(at))
	next := time.Now().Add(time.Second)
	waitFor(t, 20*time.Second, fmt.Sprintf("the collector's pass at +%s", at), func() error {
		if schema.Presence.Has(c.Store(), "ghost") {
			if time.Now().After(next) { // the tick came while a pass ran: tick again
				clk.Advance(time.Minute)
				next = time.Now().Add(time.Second)
			}
			return errors.New("the ghost controller's presence is still recorded")
		}
		return nil
	})
}

// joinWith joins an agent named name with tok.
func joinWith(t testing.TB, tc *testCluster, tok string, name string) error {
	t.Helper()
	pt, err := pki.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	_, err = ctlclient.Join(context.Background(), tc.LiveAddrs(), pt, &controllerv1.JoinRequest{Token: tok, CsrPem: mustCSR(t, key), Name: name}, 0)
	return err
}

// The leader deletes a finished command (which may carry secrets) an hour
// after it finished and an unanswered one after a day; a token expires at
// its TTL and its record goes an hour later; presence of a removed
// controller goes at the next pass. Time is a fake clock's.
func TestGarbage_CommandsAndTokensOnTheClock(t *testing.T) {
	tc, clk := fakeClockCluster(t)
	c := tc.Nodes[0].C
	ctx := context.Background()
	start := clk.Now()
	enrolled(t, tc, controllerv1.Role_ROLE_AGENT, "web-1", "") // enrolled, never connected
	ops, canaries := canaryOps()
	pending, err := c.SendCommand(ctx, "web-1", ops["BootApp"])
	if err != nil {
		t.Fatal(err)
	}
	doneID := controller.NewCommandID("web-1")
	if _, err := c.Store().Apply(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{
		schema.Commands.Put(schema.CommandKey("web-1", doneID), &controllerv1.CommandRecord{Id: doneID, Agent: "web-1",
			Operation: ops["PullImage"], State: controllerv1.CommandState_COMMAND_STATE_DONE,
			CreatedUnixMillis: start.UnixMilli(), DoneUnixMillis: start.UnixMilli()})}}); err != nil {
		t.Fatal(err)
	}
	tok := tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 10, time.Hour)
	tokID := func() string {
		ids := listTokens(t, tc)
		if len(ids) != 1 {
			return ""
		}
		return ids[0]
	}()
	if tokID == "" {
		t.Fatalf("ListTokens = %v, want the one token", listTokens(t, tc))
	}
	has := func(key string) bool { return schema.Commands.Has(c.Store(), key) }
	doneKey, pendingKey := schema.CommandKey("web-1", doneID), schema.CommandKey("web-1", pending)

	gcPass(t, tc, clk, start, 50*time.Minute)
	if !has(doneKey) || !has(pendingKey) {
		t.Fatalf("at +50m: done command kept %v, pending kept %v; want both kept", has(doneKey), has(pendingKey))
	}
	if err := joinWith(t, tc, tok, "before-ttl"); err != nil {
		t.Fatalf("Join with a token within its TTL = %v", err)
	}

	gcPass(t, tc, clk, start, 70*time.Minute)
	if has(doneKey) {
		t.Error("at +70m the command that finished at +0 is still stored, want deleted after an hour")
	}
	if !has(pendingKey) {
		t.Error("at +70m the unanswered command is gone, want kept for a day")
	}
	if err := joinWith(t, tc, tok, "after-ttl"); !errors.Is(err, ctlclient.ErrTokenRejected) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Join past the token's TTL = %v, want rejected as expired", err)
	}
	if ids := listTokens(t, tc); len(ids) != 0 {
		t.Errorf("ListTokens past the TTL = %v, want none", ids)
	}
	if !schema.Tokens.Has(c.Store(), tokID) {
		t.Error("the expired token's record is gone within an hour of its expiry, want kept (reuse is told \"expired\")")
	}

	gcPass(t, tc, clk, start, 2*time.Hour+10*time.Minute)
	if schema.Tokens.Has(c.Store(), tokID) {
		t.Error("the token's record is kept more than an hour past its expiry")
	}
	if err := joinWith(t, tc, tok, "after-gc"); !errors.Is(err, ctlclient.ErrTokenRejected) || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("Join with a collected token = %v, want rejected as unknown", err)
	}

	gcPass(t, tc, clk, start, 23*time.Hour)
	if !has(pendingKey) {
		t.Error("at +23h the unanswered command is gone, want kept for a day")
	}
	gcPass(t, tc, clk, start, 24*time.Hour+10*time.Minute)
	if has(pendingKey) {
		t.Error("at +24h10m the unanswered command is still stored")
	}
	if leak := storeHolding(c.Store().View(), canaries); len(leak) > 0 {
		t.Errorf("after collection the store still holds secrets: %v", leak)
	}
	if got := listTokens(t, tc); !slices.Equal(got, nil) {
		t.Errorf("tokens = %v", got)
	}
}
