package controller_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/apierr"
	"github.com/kctl-dev/kctl/internal/auditchain"
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/kctl"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// auditLog reads the whole audit history through node's API.
func auditLog(t testing.TB, cc *grpc.ClientConn) []*deployv1.AuditEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := deployv1.NewDeployServiceClient(cc).Audit(ctx, &deployv1.AuditRequest{})
	if err != nil {
		t.Fatalf("Audit = %v", err)
	}
	return resp.GetEntries()
}

// newEntries runs action and returns the audit entries it added, once the
// audit holds want of them matching match (polled: exec entries are
// written as the stream ends).
func newEntries(t testing.TB, cc *grpc.ClientConn, what string, action func()) []*deployv1.AuditEntry {
	t.Helper()
	before := auditLog(t, cc)
	var last uint64
	if len(before) > 0 {
		last = before[len(before)-1].GetSeq()
	}
	action()
	var out []*deployv1.AuditEntry
	for _, e := range auditLog(t, cc) {
		if e.GetSeq() > last {
			out = append(out, e)
		}
	}
	return out
}

// matching keeps the entries of method (its short name, "RemoveAgent") or
// whose action contains action.
func matching(es []*deployv1.AuditEntry, method, action string) []*deployv1.AuditEntry {
	var out []*deployv1.AuditEntry
	for _, e := range es {
		if (method != "" && strings.HasSuffix(e.GetMethod(), "/"+method)) || (action != "" && strings.Contains(e.GetAction(), action)) {
			out = append(out, e)
		}
	}
	return out
}

func describe(es []*deployv1.AuditEntry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString("\n  " + e.GetOperator() + " " + e.GetCallerRole() + " " + e.GetAction() + " " + e.GetResult())
	}
	return b.String()
}

// Every kind of action that changes anything leaves exactly one audit
// entry over real gRPC and mutual TLS, naming who (name, role, address),
// what and the result, and none holds a token's secret; a read and an
// agent's heartbeats leave none.
func TestAudit_EveryActionLeavesOneEntry(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	dir := filepath.Join(t.TempDir(), "web-1")
	tc.startAgentWith("web-1", &countingRuntime{}, func(c *agent.Config) { c.DataDir = dir }, 0)
	admin := rawConn(t, tc.Nodes[0].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key)))
	ctl := controllerv1.NewControllerServiceClient(admin)
	dep := deployv1.NewDeployServiceClient(admin)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor(t, 10*time.Second, "web-1 connected", func() error {
		r, err := ctl.DescribeAgent(ctx, &controllerv1.DescribeAgentRequest{Name: "web-1"})
		if err == nil && r.GetAgent().GetStatus() != "connected" {
			err = errors.New(r.GetAgent().GetStatus())
		}
		return err
	})
	var secrets []string
	one := func(what, method, action, result string, run func() error) *deployv1.AuditEntry {
		t.Helper()
		var runErr error
		es := newEntries(t, admin, what, func() { runErr = run() })
		if (result == "ok") != (runErr == nil) {
			t.Fatalf("%s = %v, want result %s", what, runErr, result)
		}
		got := matching(es, method, action)
		if len(got) != 1 {
			t.Fatalf("%s left %d matching audit entries, want 1; new entries:%s", what, len(got), describe(es))
		}
		if got[0].GetResult() != result {
			t.Errorf("%s: entry result %q, want %q", what, got[0].GetResult(), result)
		}
		if got[0].GetOperator() == "" || got[0].GetSeq() == 0 || len(got[0].GetHash()) != 32 {
			t.Errorf("%s: entry %v lacks who or its place in the chain", what, got[0])
		}
		return got[0]
	}

	var tok *controllerv1.CreateTokenResponse
	e := one("token create", "CreateToken", "", "ok", func() (err error) {
		tok, err = ctl.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_OPERATOR, Name: "olivia", OperatorRole: "deployer", Uses: 1, TtlSeconds: 3600})
		return err
	})
	secrets = append(secrets, tok.GetToken())
	if e.GetCallerRole() != "operator/admin" || e.GetAddress() == "" || !strings.Contains(e.GetAction(), `name="olivia"`) {
		t.Errorf("token create entry = %v, want the admin's role, address and the token's name", e)
	}
	ptok, err := pki.ParseToken(tok.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	var joined *controllerv1.JoinResponse
	e = one("login", "Join", "", "ok", func() (err error) {
		joined, err = ctlclient.Join(ctx, []string{tc.Nodes[0].API}, ptok, &controllerv1.JoinRequest{Token: tok.GetToken(), CsrPem: mustCSR(t, key)}, 0)
		return err
	})
	if e.GetOperator() != "olivia" || e.GetCallerRole() != "operator/deployer" {
		t.Errorf("login entry = %v, want olivia, operator/deployer", e)
	}
	olivia := rawConn(t, tc.Nodes[0].API, pair(t, joined.GetCertPem(), key))

	tok2, err := ctl.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT, Uses: 1, TtlSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok2.GetToken())
	one("token revoke", "RevokeToken", "", "ok", func() error {
		_, err := ctl.RevokeToken(ctx, &controllerv1.RevokeTokenRequest{Id: tok2.GetInfo().GetId()})
		return err
	})
	e = one("lock acquire", "", "acquired the deploy lock", "ok", func() error {
		_, err := dep.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: "app", Message: "maintenance"})
		return err
	})
	// The handler's own entry gains the call's role, address and method.
	if e.GetCallerRole() != "operator/admin" || e.GetAddress() == "" || !strings.HasSuffix(e.GetMethod(), "/AcquireLock") {
		t.Errorf("lock acquire entry = %v, want the admin's role, address and the method", e)
	}
	// A deployer's pull past the admin's lock is refused, and audited.
	e = one("pull under another's lock", "PullImage", "", "FailedPrecondition", func() error {
		_, err := controllerv1.NewControllerServiceClient(olivia).PullImage(ctx, &controllerv1.PullImageRequest{Agent: "web-1",
			Pull: &agentv1.PullImage{Image: "app:1", Service: "app"}})
		if apierr.Reason(err) != apierr.ReasonDeployLockHeld {
			t.Errorf("PullImage under another's lock = %v, want DEPLOY_LOCK_HELD", err)
		}
		return err
	})
	if e.GetOperator() != "olivia" || e.GetHost() != "web-1" || e.GetService() != "app" {
		t.Errorf("refused pull entry = %v, want olivia, web-1, app", e)
	}
	one("lock release", "", "released the deploy lock", "ok", func() error {
		_, err := dep.ReleaseLock(ctx, &deployv1.ReleaseLockRequest{Service: "app"})
		return err
	})
	one("deploy", "Submit", "", "InvalidArgument", func() error {
		_, err := dep.Submit(ctx, &deployv1.SubmitRequest{})
		return err
	})
	one("app op", "App", "", "InvalidArgument", func() error {
		_, err := opsv1.NewLifecycleServiceClient(admin).App(ctx, &opsv1.ActionRequest{})
		return err
	})
	one("exec", "Exec", "", "InvalidArgument", func() error {
		st, err := streamv1.NewStreamServiceClient(admin).Exec(ctx)
		if err != nil {
			return err
		}
		if err := st.Send(&streamv1.ExecInput{Msg: &streamv1.ExecInput_Start{Start: &streamv1.ExecStart{Agent: "web-1", Command: []string{"true"}}}}); err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	})
	one("SendCommand", "SendCommand", "", "ok", func() error {
		_, err := ctl.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1", Wait: true,
			Operation: &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: "x"}}}})
		return err
	})
	es := newEntries(t, admin, "reads", func() {
		if _, err := ctl.PingAgent(ctx, &controllerv1.PingAgentRequest{Agent: "web-1"}); err != nil {
			t.Errorf("PingAgent = %v", err)
		}
		if _, err := ctl.DescribeAgent(ctx, &controllerv1.DescribeAgentRequest{Name: "web-1", Fresh: true}); err != nil {
			t.Errorf("DescribeAgent = %v", err)
		}
		if _, err := ctl.ListTokens(ctx, &controllerv1.ListTokensRequest{}); err != nil {
			t.Errorf("ListTokens = %v", err)
		}
		// Let the agent's heartbeats move its last-seen time twice.
		seen := map[int64]bool{}
		waitFor(t, 10*time.Second, "two heartbeats of web-1", func() error {
			r, err := ctl.DescribeAgent(ctx, &controllerv1.DescribeAgentRequest{Name: "web-1"})
			if err != nil {
				return err
			}
			seen[r.GetAgent().GetLastSeenUnixMillis()] = true
			if len(seen) < 3 {
				return fmt.Errorf("last seen at %d distinct times", len(seen))
			}
			return nil
		})
	})
	if len(es) != 0 {
		t.Errorf("reads and heartbeats left audit entries:%s", describe(es))
	}
	one("operator remove", "RemoveOperator", "", "ok", func() error {
		_, err := ctl.RemoveOperator(ctx, &controllerv1.RemoveOperatorRequest{Name: "olivia"})
		return err
	})
	one("agent remove", "RemoveAgent", "", "ok", func() error {
		_, err := ctl.RemoveAgent(ctx, &controllerv1.RemoveAgentRequest{Name: "web-1"})
		return err
	})
	one("controller remove", "RemoveController", "", "ok", func() error {
		_, err := ctl.RemoveController(ctx, &controllerv1.RemoveControllerRequest{Name: tc.Nodes[2].Name})
		return err
	})

	// No entry holds a token's secret, and every node holds the same chain.
	for _, e := range auditLog(t, admin) {
		for _, s := range secrets {
			if strings.Contains(e.String(), s) {
				t.Errorf("audit entry %d holds a token: %v", e.GetSeq(), e)
			}
		}
	}
	leader := tc.Nodes[tc.Leader()].C.Store()
	waitFor(t, 10*time.Second, "the same chain head on c1 and c2", func() error {
		s1, h1 := schema.Audit.Head(tc.Nodes[0].C.Store().View())
		s2, h2 := schema.Audit.Head(tc.Nodes[1].C.Store().View())
		sl, _ := schema.Audit.Head(leader.View())
		if s1 != s2 || s1 != sl || !bytes.Equal(h1, h2) {
			return errors.New("heads differ")
		}
		return nil
	})
}

// Tampering with one audit entry in a copy of a controller's data (its
// snapshot, edited offline) is found by `kctl audit verify`, which names
// the entry; the untouched chain verifies.
func TestAudit_VerifyNamesTamperedEntry(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 5 {
		tc.Token(controllerv1.Role_ROLE_AGENT, "", "", uint32(i+1), time.Hour)
	}
	verify := func() (string, error) {
		var out, errb bytes.Buffer
		err := kctl.Run(ctx, []string{"--credentials", tc.AdminPath, "audit", "verify", "--controller", tc.Nodes[0].API}, &out, &errb)
		return out.String() + errb.String(), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "audit chain verified") {
		t.Fatalf("kctl audit verify = %v, %s; want verified", err, out)
	}
	rows := schema.Audit.Rows(tc.Nodes[0].C.Store().View())
	if len(rows) < 5 {
		t.Fatalf("%d audit links, want at least 5", len(rows))
	}
	victim := rows[2]
	if err := tc.Nodes[0].C.Store().Snapshot(); err != nil {
		t.Fatal(err)
	}
	tc.Kill(0)
	n, err := raftstore.EditSnapshot(tc.Nodes[0].Dir, func(r *raftcmdv1.SnapshotRecord) bool {
		if r.GetTable() != schema.Audit.Name() || r.GetKey() != victim.Key {
			return false
		}
		link := new(raftcmdv1.ChainLink)
		if err := proto.Unmarshal(r.GetValue(), link); err != nil {
			t.Fatal(err)
		}
		e := new(deployv1.AuditEntry)
		if err := proto.Unmarshal(link.GetValue(), e); err != nil {
			t.Fatal(err)
		}
		e.Operator = "someone-else"
		link.Value, _ = proto.Marshal(e)
		r.Value, _ = proto.Marshal(link)
		return true
	})
	if err != nil || n != 1 {
		t.Fatalf("EditSnapshot = %d, %v; want 1 record changed", n, err)
	}
	tc.Restart(0)
	out, err := verify()
	if !errors.Is(err, auditchain.ErrBroken) && !strings.Contains(out+errString(err), "audit chain broken") {
		t.Fatalf("kctl audit verify on the tampered copy = %v, %s; want the chain broken", err, out)
	}
	want := "at entry " + strconv.FormatUint(victim.Link.GetSeq(), 10) + ":"
	if !strings.Contains(errString(err), want) || !strings.Contains(errString(err), "someone-else") {
		t.Errorf("kctl audit verify = %v, want it to name entry %d (%q) as stored", err, victim.Link.GetSeq(), want)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A deployer's PullImage goes through while nobody holds the lock, and the
// lock's holder may pull under it; a viewer may ping but not pull.
func TestAgentOps_PullRespectsDeployLock(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	rt := &countingRuntime{}
	tc.startAgent("web-1", rt, 0)
	deeConn := rawConn(t, tc.Nodes[0].API, enrolled(t, tc, controllerv1.Role_ROLE_OPERATOR, "dee", "deployer"))
	dee, deeDeploy := controllerv1.NewControllerServiceClient(deeConn), deployv1.NewDeployServiceClient(deeConn)
	vee := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, enrolled(t, tc, controllerv1.Role_ROLE_OPERATOR, "vee", "viewer")))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pull := &controllerv1.PullImageRequest{Agent: "web-1", Pull: &agentv1.PullImage{Image: "app:1", Service: "app"}}
	waitFor(t, 10*time.Second, "a pull answered", func() error {
		_, err := dee.PullImage(ctx, pull)
		return err
	})
	if _, err := deeDeploy.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: "app", Message: "mine"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dee.PullImage(ctx, pull); err != nil {
		t.Errorf("PullImage by the lock's holder = %v, want it through", err)
	}
	if _, err := vee.PingAgent(ctx, &controllerv1.PingAgentRequest{Agent: "web-1", Payload: "hi"}); err != nil {
		t.Errorf("PingAgent as a viewer = %v", err)
	}
	if _, err := vee.PullImage(ctx, pull); status.Code(err) != codes.PermissionDenied {
		t.Errorf("PullImage as a viewer = %v, want PermissionDenied", err)
	}
}

// Retention drops the oldest entries behind a checkpoint signed by the
// cluster CA: what remains still verifies, and a checkpoint whose signature
// does not match (edited offline) is named.
func TestAudit_RetentionKeepsTheChainVerifiable(t *testing.T) {
	clk := clock.NewFake(time.Now())
	tc := &testCluster{Cluster: controllertest.NewCluster(t, 1, controllertest.WithClock(clk),
		controllertest.WithAuditRetention(controller.AuditRetention{MaxEntries: 3})), t: t}
	for i := range 8 {
		tc.Token(controllerv1.Role_ROLE_AGENT, "", "", uint32(i+1), time.Hour)
	}
	st := tc.Nodes[0].C.Store()
	head, _ := schema.Audit.Head(st.View())
	waitFor(t, 10*time.Second, "retention to keep 3 entries", func() error {
		clk.Advance(time.Minute)
		if n := len(schema.Audit.Rows(st.View())); n != 3 {
			return fmt.Errorf("%d entries", n)
		}
		return nil
	})
	cp, _, ok := schema.AuditCheckpoint.Get(st.View(), schema.KeyCheckpoint)
	if !ok || cp.GetSeq() != head-3 || cp.GetDropped() != head-3 {
		t.Fatalf("checkpoint = %v, want seq and dropped %d", cp, head-3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	verify := func() (string, error) {
		var out, errb bytes.Buffer
		err := kctl.Run(ctx, []string{"--credentials", tc.AdminPath, "audit", "verify"}, &out, &errb)
		return out.String() + errb.String(), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "older entries dropped by retention") {
		t.Fatalf("kctl audit verify = %v, %s; want verified with the checkpoint", err, out)
	}
	if err := st.Snapshot(); err != nil {
		t.Fatal(err)
	}
	tc.Kill(0)
	if _, err := raftstore.EditSnapshot(tc.Nodes[0].Dir, func(r *raftcmdv1.SnapshotRecord) bool {
		if r.GetTable() != schema.AuditCheckpoint.Name() {
			return false
		}
		c := new(deployv1.AuditCheckpoint)
		_ = proto.Unmarshal(r.GetValue(), c)
		c.Dropped++ // claim one more entry was dropped
		r.Value, _ = proto.Marshal(c)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	tc.Restart(0)
	if _, err := verify(); !strings.Contains(errString(err), "checkpoint: signature does not verify") {
		t.Errorf("kctl audit verify with an edited checkpoint = %v, want its signature refused", err)
	}
}

// A follower's Raft log edited offline (one audit entry changed in
// raft.db) rebuilds a chain that verifies on its own when the node
// replays it; `kctl audit verify` across the controllers names the entry
// where its copy departs from the others'.
func TestAudit_VerifyComparesControllers(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	for i := range 4 {
		tc.Token(controllerv1.Role_ROLE_AGENT, "", "", uint32(i+1), time.Hour)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	verify := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := kctl.Run(ctx, append([]string{"--credentials", tc.AdminPath, "audit", "verify"}, args...), &out, &errb)
		return out.String() + errb.String(), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "the same on 3 controllers") {
		t.Fatalf("kctl audit verify = %v, %s; want verified on 3 controllers", err, out)
	}
	f := tc.Follower()
	leader := tc.Nodes[tc.Leader()].C.Store()
	tc.Kill(f)
	var victim uint64
	n, err := raftstore.EditLog(tc.Nodes[f].Dir, func(index uint64, cmd *raftcmdv1.Command) bool {
		for _, m := range cmd.GetMutations() {
			a := m.GetAppend()
			if a == nil || a.GetTable() != schema.Audit.Name() || victim != 0 {
				continue
			}
			e := new(deployv1.AuditEntry)
			if err := proto.Unmarshal(a.GetValue(), e); err != nil || !strings.Contains(e.GetAction(), "CreateToken") || !strings.Contains(e.GetAction(), "ROLE_AGENT") {
				continue
			}
			e.Operator = "someone-else"
			a.Value, _ = proto.Marshal(e)
			victim = index
			return true
		}
		return false
	})
	if err != nil || n != 1 {
		t.Fatalf("EditLog = %d, %v; want 1 entry changed", n, err)
	}
	tc.Restart(f)
	st := tc.Nodes[f].C.Store()
	waitFor(t, 20*time.Second, "the restarted follower to replay its log", func() error {
		if a, b := st.AppliedIndex(), leader.AppliedIndex(); a < b {
			return fmt.Errorf("applied %d of %d", a, b)
		}
		return nil
	})
	var seq uint64
	for _, r := range schema.Audit.Rows(st.View()) {
		if r.Value.GetOperator() == "someone-else" {
			seq = r.Link.GetSeq()
		}
	}
	if seq == 0 {
		t.Fatal("the edited log entry was not replayed")
	}
	if out, err := verify("--controller", tc.Nodes[f].API); err != nil {
		t.Logf("the rebuilt copy alone: %v %s", err, out) // expected to verify: the chain is self-consistent
	}
	_, err = verify()
	if !strings.Contains(errString(err), "entry "+strconv.FormatUint(seq, 10)+" differs between controllers") || !strings.Contains(errString(err), "someone-else") {
		t.Errorf("kctl audit verify with a rebuilt copy = %v, want entry %d named as differing", err, seq)
	}
}
