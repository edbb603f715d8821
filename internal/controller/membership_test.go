package controller_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// statusOf asks nodes (all live ones when none are given) for the
// cluster status as the admin.
func statusOf(t testing.TB, tc *testCluster, nodes ...int) *controllerv1.ClusterStatusResponse {
	t.Helper()
	var st *controllerv1.ClusterStatusResponse
	err := tc.AdminClient(nodes...).Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		st, err = cc.ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{})
		return err
	})
	if err != nil {
		t.Fatalf("ClusterStatus = %v", err)
	}
	return st
}

func nodeOf(st *controllerv1.ClusterStatusResponse, name string) *controllerv1.ControllerNode {
	for _, n := range st.GetNodes() {
		if n.GetName() == name {
			return n
		}
	}
	return nil
}

// healthy fails unless the status lists want nodes, all voters, healthy.
func healthy(st *controllerv1.ClusterStatusResponse, want ...string) error {
	if len(st.GetProblems()) > 0 {
		return fmt.Errorf("problems: %v", st.GetProblems())
	}
	var got []string
	for _, n := range st.GetNodes() {
		got = append(got, n.GetName())
		if !n.GetVoter() || !n.GetServing() {
			return fmt.Errorf("%s: voter %v, serving %v", n.GetName(), n.GetVoter(), n.GetServing())
		}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("nodes %v, want %v", got, want)
	}
	return nil
}

// A controller joining a cluster with a long history, while writes keep
// coming, catches up (snapshot and log), becomes a voter and serves; it
// never takes itself for removed (it applies the CA record long before its
// own node record), also after a restart.
func TestMembership_JoinBusyClusterServes(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *raftstore.Config) {
		c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = 64, 16, 100*time.Millisecond
	})
	for range 120 {
		tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour)
	}
	if err := tc.Nodes[tc.Leader()].C.Store().Snapshot(); err != nil {
		t.Fatal(err)
	}
	tok := tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 1, time.Hour)
	// Writes go on while c4 joins.
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	cl := tc.AdminClient(0, 1, 2)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := cl.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT})
				return err
			}); err == nil {
				writes.Add(1)
			}
		}
	})
	i := tc.AddNode("c4")
	tc.Join(i, tok)
	c4 := tc.Nodes[i].C
	waitFor(t, 10*time.Second, "writes during and after the join", func() error {
		if writes.Load() < 20 {
			return fmt.Errorf("%d writes", writes.Load())
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if !c4.Serving() {
		t.Fatal("c4 does not serve after joining")
	}
	waitFor(t, 15*time.Second, "a healthy 4-node cluster seen from c4", func() error {
		return healthy(statusOf(t, tc, i), "c1", "c2", "c3", "c4")
	})
	l := tc.Nodes[tc.Leader()].C.Store()
	waitFor(t, 10*time.Second, "c4 to hold every token", func() error {
		if got, want := len(c4.Store().List("tokens", "")), len(l.List("tokens", "")); got != want {
			return fmt.Errorf("c4 holds %d tokens, the leader %d", got, want)
		}
		return nil
	})
	// c4 holds agent sessions and delivers commands.
	roundTrip := func(agentName, payload string) {
		t.Helper()
		a := tc.startAgent(agentName, &countingRuntime{}, i)
		waitFor(t, 10*time.Second, agentName+" on c4", func() error {
			if got := a.Connected(); got != tc.Nodes[i].API {
				return fmt.Errorf("%s connected to %q", agentName, got)
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		l := tc.Nodes[tc.Leader()].C
		id, err := l.SendCommand(ctx, agentName, &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: payload}}})
		if err != nil {
			t.Fatalf("SendCommand = %v", err)
		}
		if rec, err := l.WaitResult(ctx, id); err != nil || rec.GetResult().GetDetail() != payload {
			t.Fatalf("WaitResult = %v, %v; want the payload", rec.GetResult(), err)
		}
	}
	roundTrip("web-1", "after-join")
	// A restart (replaying the log from a snapshot older than its join)
	// serves again.
	tc.Kill(i)
	tc.Restart(i)
	waitFor(t, 15*time.Second, "c4 serving after a restart", func() error {
		if !tc.Nodes[i].C.Serving() {
			return errors.New("c4 not serving")
		}
		return healthy(statusOf(t, tc, i), "c1", "c2", "c3", "c4")
	})
	roundTrip("web-2", "after-restart")
}

// A controller joining with an agent token, and an agent enrolling with a
// controller token, fail at once with a clear message and use nothing up:
// no phantom agent, the tokens still work for their role.
func TestMembership_WrongRoleTokenFailsAtOnce(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	agentTok := tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour)
	i := tc.AddNode("c2")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := tc.StartErr(ctx, i, func(cfg *controller.Config) {
		cfg.JoinAddrs, cfg.Token = []string{tc.Nodes[0].API}, agentTok
	})
	if err == nil || !strings.Contains(err.Error(), "this is an agent token") || !strings.Contains(err.Error(), "kctl token create --role controller") {
		t.Fatalf("controller join with an agent token = %v, want the wrong-token refusal", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the refusal took until the deadline")
	}
	if _, _, ok := schema.Agents.Get(tc.Nodes[0].C.Store().View(), "c2"); ok {
		t.Fatal("a phantom agent c2 was recorded")
	}
	if _, err := os.Stat(filepath.Join(tc.Nodes[i].Dir, "node.crt")); err == nil {
		t.Fatal("the refused controller stored a certificate")
	}
	// The agent token still enrols an agent.
	agentDir := filepath.Join(t.TempDir(), "web-1")
	a, err := agent.New(ctx, agent.Config{Name: "web-1", DataDir: agentDir, Controllers: tc.LiveAddrs(),
		Token: agentTok, Runtime: &countingRuntime{}, Version: "test", Logger: tc.Logger, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("agent with the unused agent token = %v", err)
	}
	_ = a
	// A data directory holding an agent's certificate (what an agent
	// token gave a controller before) is named for what it is.
	dir := tc.Nodes[tc.AddNode("web-1")].Dir
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dir, 0o700))
	for from, to := range map[string]string{"agent.crt": "node.crt", "agent.key": "node.key", "ca.crt": "ca.crt"} {
		b, err := os.ReadFile(filepath.Join(agentDir, from))
		must(err)
		must(os.WriteFile(filepath.Join(dir, to), b, 0o600))
	}
	if err := tc.StartErr(ctx, len(tc.Nodes)-1, nil); err == nil || !strings.Contains(err.Error(), `holds the certificate of agent "web-1", not of a controller`) {
		t.Fatalf("restart of a data dir holding an agent's certificate = %v, want it named", err)
	}
	// An agent with a controller token is refused; the token still works.
	ctrlTok := tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 1, time.Hour)
	_, err = agent.New(ctx, agent.Config{Name: "web-2", DataDir: filepath.Join(t.TempDir(), "web-2"), Controllers: tc.LiveAddrs(),
		Token: ctrlTok, Runtime: &countingRuntime{}, Version: "test", Logger: tc.Logger, DialTimeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "this is a controller token") {
		t.Fatalf("agent with a controller token = %v, want the wrong-token refusal", err)
	}
	if _, _, ok := schema.Agents.Get(tc.Nodes[0].C.Store().View(), "web-2"); ok {
		t.Fatal("agent web-2 was recorded")
	}
	tc.Join(i, ctrlTok)
	waitFor(t, 15*time.Second, "a healthy 2-node cluster", func() error {
		return healthy(statusOf(t, tc), "c1", "c2")
	})
}

// A Join retried by the same joiner (same token, name and key), e.g. after
// a leader change lost the answer, succeeds again without using the token
// up; another joiner finds the token used.
func TestMembership_JoinRetryIsIdempotent(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	tok, err := pki.ParseToken(tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 1, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	join := func(key []byte) (*controllerv1.JoinResponse, error) {
		csr, err := pki.NewCSR(key, pki.Identity{Role: pki.RoleController, Name: "c9"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return ctlclient.Join(ctx, tc.LiveAddrs(), tok, &controllerv1.JoinRequest{
			Token: tok.String(), CsrPem: csr, Name: "c9", ApiAddress: "127.0.0.1:1", RaftAddress: "127.0.0.1:2", ProtocolVersion: uint32(protocol.Current())}, 0)
	}
	key, _ := pki.NewKey()
	r1, err := join(key)
	if err != nil {
		t.Fatalf("Join = %v", err)
	}
	r2, err := join(key)
	if err != nil {
		t.Fatalf("Join retried by the same joiner = %v, want a certificate", err)
	}
	if string(r1.GetCertPem()) == string(r2.GetCertPem()) {
		t.Fatal("the retry returned the same certificate, want a new one")
	}
	serials := serialsOf(tc, pki.Identity{Role: pki.RoleController, Name: "c9"})
	for _, r := range []*controllerv1.JoinResponse{r1, r2} {
		leaf, _ := pki.ParseCertificate(r.GetCertPem())
		if !slices.Contains(serials, pki.Serial(leaf)) {
			t.Fatalf("serial %s not recorded for c9 (%v)", pki.Serial(leaf), serials)
		}
	}
	other, _ := pki.NewKey()
	if _, err := join(other); err == nil || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("Join by another key with the used token = %v, want used up", err)
	}
}

// A controller that joined but does not keep up (here: never runs Raft)
// is a nonvoter until it reports it is current: with one voter of three
// down, the cluster still commits.
func TestMembership_SlowJoinerCostsNoQuorum(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tok, err := pki.ParseToken(tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 1, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, pki.Identity{Role: pki.RoleController, Name: "c9"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := ctlclient.Join(ctx, tc.LiveAddrs(), tok, &controllerv1.JoinRequest{
		Token: tok.String(), CsrPem: csr, Name: "c9", ApiAddress: "127.0.0.1:1", RaftAddress: "127.0.0.1:2", ProtocolVersion: uint32(protocol.Current())}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c9, err := pki.NewCredentials(r.GetCertPem(), key, r.GetCaPem())
	if err != nil {
		t.Fatal(err)
	}
	// c9 asks to vote while far behind: it is added, as a nonvoter.
	var voter bool
	if err := tc.Client(c9).Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		r, err := cc.AddController(ctx, &controllerv1.AddControllerRequest{AppliedIndex: 1})
		voter = r.GetVoter()
		return err
	}); err != nil {
		t.Fatalf("AddController = %v", err)
	}
	if voter {
		t.Fatal("a controller far behind was made a voter")
	}
	servers, err := tc.Nodes[tc.Leader()].C.Store().Servers()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(servers, func(s raftstore.Server) bool { return s.ID == "c9" && !s.Voter }) {
		t.Fatalf("configuration = %v, want c9 as a nonvoter", servers)
	}
	tc.Kill(tc.Follower())
	tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour) // commits with 2 of 3 voters
}

// raftRefuses reports whether the Raft port at addr refuses creds: the
// connection ends instead of waiting for a Raft RPC.
func raftRefuses(t testing.TB, addr string, creds *pki.Credentials) bool {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, creds.ClientTLS(pki.RoleController))
	if err != nil {
		return true
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// A dead controller is removed; its certificate is refused on the API and
// the Raft ports; a fresh controller under the same name replaces it.
func TestMembership_RemoveDeadAndReplace(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	old := tc.Nodes[2].C.Credentials()
	// c3 also holds a certificate whose serial its record no longer lists
	// (renewed five times, never installed): only membership refuses it.
	var stale *pki.Credentials
	for n := range 5 {
		key, _ := pki.NewKey()
		csr, _ := pki.NewCSR(key, old.Identity())
		if err := tc.Client(old, 2).Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			r, err := cc.RenewCertificate(ctx, &controllerv1.RenewCertificateRequest{CsrPem: csr})
			if err == nil && n == 0 {
				stale, err = pki.NewCredentials(r.GetCertPem(), key, r.GetCaPem())
			}
			return err
		}); err != nil {
			t.Fatalf("renewal %d = %v", n, err)
		}
	}
	if slices.Contains(serialsOf(tc, old.Identity()), pki.Serial(stale.Leaf())) {
		t.Fatal("the first renewal is still listed after five")
	}
	tc.Kill(2)
	err := tc.AdminClient(0, 1).Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.RemoveController(ctx, &controllerv1.RemoveControllerRequest{Name: "c3"})
		return err
	})
	if err != nil {
		t.Fatalf("RemoveController(dead c3) = %v", err)
	}
	waitFor(t, 10*time.Second, "a healthy 2-node cluster", func() error { return healthy(statusOf(t, tc, 0, 1), "c1", "c2") })
	checkRefused := func(when string) {
		t.Helper()
		if err := tc.Client(old, 0).Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			_, err := cc.ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{})
			return err
		}); err == nil {
			t.Fatalf("%s: the API accepted the removed c3's certificate", when)
		}
		for _, i := range []int{0, 1} {
			if !raftRefuses(t, tc.Nodes[i].Raft, old) {
				t.Fatalf("%s: %s's Raft port accepted the removed c3's certificate", when, tc.Nodes[i].Name)
			}
			if !raftRefuses(t, tc.Nodes[i].Raft, stale) {
				t.Fatalf("%s: %s's Raft port accepted the removed c3's unlisted certificate", when, tc.Nodes[i].Name)
			}
		}
	}
	if raftRefuses(t, tc.Nodes[0].Raft, tc.Nodes[1].C.Credentials()) {
		t.Fatal("c1's Raft port refused c2, a member")
	}
	checkRefused("after removal")
	// The replacement: same name, empty data directory.
	i := tc.AddNode("c3")
	tc.Join(i, tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 1, time.Hour))
	waitFor(t, 15*time.Second, "a healthy 3-node cluster with the new c3", func() error {
		return healthy(statusOf(t, tc, i), "c1", "c2", "c3")
	})
	checkRefused("after the replacement")
	// Quorum survives losing an original node: the new c3 votes.
	tc.Kill(0)
	tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour)
}

// ClusterStatus reports each node's Raft progress and disk, and says why
// the cluster is unhealthy: a node that cannot write its data directory
// stops serving and gives up leadership; a dead node is unreachable.
func TestMembership_ClusterStatusHealth(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	waitFor(t, 10*time.Second, "a healthy cluster", func() error { return healthy(statusOf(t, tc), "c1", "c2", "c3") })
	st := statusOf(t, tc)
	for _, n := range st.GetNodes() {
		if n.GetTerm() == 0 || n.GetAppliedIndex() == 0 || n.GetDiskFreeBytes() == 0 || n.GetVersion() == "" || n.GetState() == "" {
			t.Fatalf("node %s = %v, want term, applied index, disk free, version and state", n.GetName(), n)
		}
		if n.GetState() != "leader" && n.GetLastContactMillis() < 0 {
			t.Fatalf("follower %s never heard from the leader", n.GetName())
		}
	}
	// The leader's data directory stops taking writes: the probe file
	// becomes a directory that no file can replace.
	l := tc.Leader()
	name := tc.Nodes[l].Name
	probe := filepath.Join(tc.Nodes[l].Dir, ".probe")
	if err := os.Remove(probe); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(probe, "blocked"), 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, name+" to stop serving and lead no more", func() error {
		if tc.Nodes[l].C.Serving() {
			return fmt.Errorf("%s still serving", name)
		}
		if tc.Nodes[l].C.IsLeader() {
			return fmt.Errorf("%s still leads", name)
		}
		n := nodeOf(statusOf(t, tc), name)
		if !strings.Contains(n.GetProblem(), "cannot write its data directory") {
			return fmt.Errorf("%s's problem = %q", name, n.GetProblem())
		}
		return nil
	})
	if err := os.RemoveAll(probe); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, name+" to serve again", func() error { return healthy(statusOf(t, tc), "c1", "c2", "c3") })
	// A dead node is reported unreachable; two of three keep the quorum.
	f := tc.Follower()
	tc.Kill(f)
	var alive []int
	for j := range 3 {
		if j != f {
			alive = append(alive, j)
		}
	}
	st = statusOf(t, tc, alive...)
	if n := nodeOf(st, tc.Nodes[f].Name); n.GetState() != "unreachable" || !strings.Contains(n.GetProblem(), "unreachable") {
		t.Fatalf("killed node = %v, want unreachable", n)
	}
	if len(st.GetProblems()) != 1 {
		t.Fatalf("problems = %v, want just the unreachable node", st.GetProblems())
	}
}

// Renewing again and again without installing the result never revokes
// the certificate in use.
func TestRenewal_RepeatedRenewalKeepsTheCurrentCertificate(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	creds, err := tc.Admin.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	cl := tc.Client(creds)
	for n := range 6 {
		key, _ := pki.NewKey()
		csr, _ := pki.NewCSR(key, creds.Identity())
		if err := cl.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			_, err := cc.RenewCertificate(ctx, &controllerv1.RenewCertificateRequest{CsrPem: csr})
			return err
		}); err != nil {
			t.Fatalf("renewal %d with the certificate in use = %v", n+1, err)
		}
	}
	if err := cl.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.ListOperators(ctx, &controllerv1.ListOperatorsRequest{})
		return err
	}); err != nil {
		t.Fatalf("a call with the certificate in use after 6 renewals = %v", err)
	}
}
