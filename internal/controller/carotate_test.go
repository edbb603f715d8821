package controller_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/auditchain"
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/kctl"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// caStatus asks for the CA status as the admin.
func caStatus(t testing.TB, cl *ctlclient.Client) *controllerv1.CAStatusResponse {
	t.Helper()
	var resp *controllerv1.CAStatusResponse
	err := cl.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		resp, err = cc.CAStatus(ctx, &controllerv1.CAStatusRequest{})
		return err
	})
	if err != nil {
		t.Fatalf("CAStatus = %v", err)
	}
	return resp
}

func onOld(resp *controllerv1.CAStatusResponse) []string {
	var out []string
	for _, h := range resp.GetHolders() {
		if !h.GetOnNewCa() {
			out = append(out, h.GetRole()+"/"+h.GetName())
		}
	}
	return out
}

func listAgents(cl *ctlclient.Client) (*controllerv1.ListAgentsResponse, error) {
	var resp *controllerv1.ListAgentsResponse
	err := cl.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		resp, err = cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
		return err
	})
	return resp, err
}

// A CA rotation re-issues every certificate from the new CA while both are
// trusted: controllers at once, agents over their sessions (which stay up),
// operators after their next call, even one whose credentials trust only
// the old CA (the cross-signed certificate). Agents' encryption keys are
// certified by the new CA; a token made before the rotation still joins.
// After the grace period (the leader's clock) the old CA is dropped
// everywhere, and credentials from it are refused with the advice to enrol
// again.
func TestCARotation_ReissuesEverythingThenRetiresTheOldCA(t *testing.T) {
	clk := clock.NewFake(time.Now())
	tc := &testCluster{Cluster: controllertest.NewCluster(t, 3, controllertest.WithClock(clk), controllertest.WithHeartbeat(200*time.Millisecond)), t: t}
	dir := filepath.Join(t.TempDir(), "web-1")
	a, _ := tc.startAgentWith("web-1", &countingRuntime{}, func(c *agent.Config) { c.DataDir = dir }, 0, 1, 2)
	waitFor(t, 20*time.Second, "web-1 connected", func() error { return agentConnected(tc.AdminClient(), "web-1") })
	alice := tc.OperatorClient("alice", pki.OperatorDeployer)
	var aliceSaved []byte
	alice.Renewed = func(_, _, ca []byte) error { aliceSaved = ca; return nil }
	staleAdmin := tc.AdminClient() // never renews: offline for the whole grace period
	oldToken := tc.Token(controllerv1.Role_ROLE_OPERATOR, "bob", "viewer", 1, time.Hour)
	oldCA := tc.Nodes[0].C.Credentials().CACert()

	admin := tc.AdminClient()
	admin.Renewed = func(_, _, _ []byte) error { return nil }
	var rot *controllerv1.RotateCAResponse
	if err := admin.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		rot, err = cc.RotateCA(ctx, &controllerv1.RotateCARequest{GraceMillis: time.Hour.Milliseconds()})
		return err
	}); err != nil {
		t.Fatalf("RotateCA = %v", err)
	}
	if rot.GetOldCaDigest() != pki.Digest(oldCA.Raw) || rot.GetNewCaDigest() == rot.GetOldCaDigest() {
		t.Fatalf("RotateCA = %v, want a new CA replacing %s", rot, pki.Digest(oldCA.Raw))
	}
	// A second rotation during the grace period is refused.
	if err := admin.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.RotateCA(ctx, &controllerv1.RotateCARequest{})
		return err
	}); err == nil || !strings.Contains(err.Error(), "already in progress") {
		t.Errorf("a second RotateCA = %v, want already in progress", err)
	}

	isNew := func(leafIssuer string) bool { return leafIssuer == rot.GetNewCaDigest() }
	issuer := func(c *pki.Credentials) string { return pki.Digest(c.CACert().Raw) }
	waitFor(t, 20*time.Second, "controllers and the agent on the new CA", func() error {
		for _, n := range tc.Nodes {
			cr := n.C.Credentials()
			if !cr.OnCurrentCA() || !isNew(issuer(cr)) || len(cr.CACerts()) != 2 {
				return fmt.Errorf("%s: on the current CA %v, CA %s, %d trusted", n.Name, cr.OnCurrentCA(), issuer(cr), len(cr.CACerts()))
			}
		}
		if err := a.Leaf().CheckSignatureFrom(tc.Nodes[0].C.Credentials().CACert()); err != nil {
			return fmt.Errorf("web-1's certificate: %v", err)
		}
		return nil
	})
	// On disk too: the node certificates and the agent's.
	for _, n := range tc.Nodes {
		waitFor(t, 10*time.Second, n.Name+"'s files", func() error { return filesOnCA(n.Dir, "node.crt", "node.key", "ca.crt", rot.GetNewCaDigest()) })
	}
	waitFor(t, 10*time.Second, "web-1's files", func() error { return filesOnCA(dir, "agent.crt", "agent.key", "ca.crt", rot.GetNewCaDigest()) })
	if err := agentConnected(admin, "web-1"); err != nil {
		t.Errorf("after re-issue: %v", err)
	}
	// The encryption key is certified by the new CA.
	la, err := listAgents(admin)
	if err != nil {
		t.Fatal(err)
	}
	newCA := tc.Nodes[0].C.Credentials().CACert()
	for _, ag := range la.GetAgents() {
		if err := sealbox.Verify(newCA, ag.GetName(), ag.GetEncryptionKey(), ag.GetEncryptionKeySig()); err != nil {
			t.Errorf("%s's encryption key under the new CA: %v", ag.GetName(), err)
		}
	}
	if got := onOld(caStatus(t, admin)); len(got) != 1 || got[0] != "operator/alice" {
		t.Errorf("still on the old CA: %v, want operator/alice", got)
	}
	// alice trusts only the old CA, is served by new-CA controllers, and
	// renews after her call.
	if len(alice.Credentials().CACerts()) != 1 {
		t.Fatal("alice already trusts the new CA")
	}
	if _, err := listAgents(alice); err != nil {
		t.Fatalf("alice (old CA only) during the grace period: %v", err)
	}
	if !alice.Credentials().OnCurrentCA() || !isNew(issuer(alice.Credentials())) || len(aliceSaved) == 0 {
		t.Fatalf("alice after a call: on the new CA %v, saved %d bytes", alice.Credentials().OnCurrentCA(), len(aliceSaved))
	}
	// A token made before the rotation still joins.
	bob := joinOperator(t, tc, oldToken, "bob")
	if !isNew(issuer(bob)) {
		t.Errorf("bob joined with a pre-rotation token and got CA %s", issuer(bob))
	}
	st := caStatus(t, alice)
	if !st.GetRotating() || st.GetOldCaDigest() != rot.GetOldCaDigest() {
		t.Errorf("status = %v, want rotating from the old CA", st)
	}
	if got := onOld(st); len(got) != 0 {
		t.Errorf("still on the old CA: %v, want nobody", got)
	}

	// End of the grace period, on the leader's clock.
	clk.Advance(time.Hour + time.Second)
	waitFor(t, 20*time.Second, "the old CA retired everywhere", func() error {
		for _, n := range tc.Nodes {
			if k := len(n.C.Credentials().CACerts()); k != 1 {
				return fmt.Errorf("%s trusts %d CAs", n.Name, k)
			}
		}
		rec, _, _ := schema.Cluster.Get(tc.Nodes[0].C.Store().View(), schema.KeyCA)
		if len(rec.GetOldCaCertPem()) > 0 || len(rec.GetCrossCertPem()) > 0 {
			return errors.New("the cluster record still holds the old CA")
		}
		return nil
	})
	if st := caStatus(t, alice); st.GetRotating() {
		t.Errorf("status after the grace period = %v, want no rotation", st)
	}
	// The agent drops the old CA too (its next heartbeat).
	waitFor(t, 10*time.Second, "web-1 trusting only the new CA", func() error {
		b, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
		tb, err := pki.ParseTrustBundle(b)
		if err != nil || len(tb.CAs) != 1 || len(tb.Cross) != 0 {
			return fmt.Errorf("ca.crt: %v %v", tb, err)
		}
		return agentConnected(admin, "web-1")
	})
	// Credentials of the old CA: refused, with the advice to enrol again.
	_, err = listAgents(staleAdmin)
	if !errors.Is(err, ctlclient.ErrCARotated) || !strings.Contains(err.Error(), "kctl token create") {
		t.Errorf("an old-CA operator after the grace period = %v, want ErrCARotated naming kctl token create", err)
	}
	if _, err := listAgents(alice); err != nil {
		t.Errorf("alice, renewed: %v", err)
	}
}

// joinOperator joins an operator with tok and returns its credentials.
func joinOperator(t testing.TB, tc *testCluster, token, name string) *pki.Credentials {
	t.Helper()
	tok, err := pki.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, pki.Identity{Role: pki.RoleOperator, Name: name})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := ctlclient.Join(ctx, tc.LiveAddrs(), tok, &controllerv1.JoinRequest{Token: tok.String(), CsrPem: csr}, 0)
	if err != nil {
		t.Fatalf("Join(%s) = %v", name, err)
	}
	creds, err := pki.NewCredentials(resp.GetCertPem(), key, resp.GetCaPem())
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// filesOnCA checks that cert/key in dir load with the bundle in caFile and
// the certificate is issued by the CA with digest.
func filesOnCA(dir, certFile, keyFile, caFile, digest string) error {
	var pems [3][]byte
	for i, f := range []string{certFile, keyFile, caFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		pems[i] = b
	}
	cr, err := pki.NewCredentials(pems[0], pems[1], pems[2])
	if err != nil {
		return err
	}
	if d := pki.Digest(cr.CACert().Raw); d != digest || !cr.OnCurrentCA() {
		return fmt.Errorf("%s: CA %s (on it: %v), want %s", certFile, d, cr.OnCurrentCA(), digest)
	}
	return nil
}

// agentConnected checks that ListAgents reports name connected.
func agentConnected(cl *ctlclient.Client, name string) error {
	resp, err := listAgents(cl)
	if err != nil {
		return err
	}
	for _, a := range resp.GetAgents() {
		if a.GetName() == name {
			if a.GetStatus() != "connected" {
				return fmt.Errorf("%s is %s", name, a.GetStatus())
			}
			return nil
		}
	}
	return fmt.Errorf("%s not listed", name)
}

// kctl renews an operator certificate that reached its renewal time after
// its next successful call, and hands the new one to be saved.
func TestCARotation_OperatorRenewsBeforeExpiry(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	alice := tc.OperatorClient("alice", pki.OperatorViewer)
	old := alice.Credentials().Leaf()
	var saved []byte
	alice.Renewed = func(cert, _, _ []byte) error { saved = cert; return nil }
	if _, err := listAgents(alice); err != nil {
		t.Fatal(err)
	}
	if saved != nil {
		t.Fatal("renewed a fresh certificate")
	}
	alice.Now = func() time.Time { return pki.RenewalTime(old).Add(time.Minute) }
	if _, err := listAgents(alice); err != nil {
		t.Fatal(err)
	}
	leaf := alice.Credentials().Leaf()
	if pki.Serial(leaf) == pki.Serial(old) || saved == nil {
		t.Fatalf("after a call past the renewal time: serial %s (old %s), saved %v", pki.Serial(leaf), pki.Serial(old), saved != nil)
	}
	if _, err := listAgents(alice); err != nil {
		t.Errorf("a call with the renewed certificate: %v", err)
	}
}

// A controller that cannot open the CA key (no key-encryption key here)
// gets its new certificate from another controller.
func TestCARotation_ControllerWithoutTheKeyRenewsFromAPeer(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.Kill(2)
	if err := os.Remove(filepath.Join(tc.Nodes[2].Dir, "kek")); err != nil {
		t.Fatal(err)
	}
	tc.Restart(2)
	if _, err := tc.Nodes[2].C.CA(); err == nil {
		t.Fatal("c3 opens the CA key without its key-encryption key")
	}
	admin := tc.AdminClient()
	admin.Renewed = func(_, _, _ []byte) error { return nil }
	if err := admin.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.RotateCA(ctx, &controllerv1.RotateCARequest{GraceMillis: time.Hour.Milliseconds()})
		return err
	}); err != nil {
		t.Fatalf("RotateCA = %v", err)
	}
	waitFor(t, 20*time.Second, "c3 on the new CA", func() error {
		cr := tc.Nodes[2].C.Credentials()
		if !cr.OnCurrentCA() || len(cr.CACerts()) != 2 {
			return fmt.Errorf("c3: on the current CA %v, %d CAs trusted", cr.OnCurrentCA(), len(cr.CACerts()))
		}
		return filesOnCA(tc.Nodes[2].Dir, "node.crt", "node.key", "ca.crt", pki.Digest(cr.CACert().Raw))
	})
}

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An agent offline for the whole grace period is told to enrol again.
func TestCARotation_AgentOfflineForTheGracePeriodIsToldToEnrolAgain(t *testing.T) {
	tc, clk := fakeClockCluster(t)
	dir := filepath.Join(t.TempDir(), "web-1")
	_, stop := tc.startAgentWith("web-1", &countingRuntime{}, func(c *agent.Config) { c.DataDir = dir }, 0)
	admin := tc.AdminClient()
	admin.Renewed = func(cert, key, ca []byte) error { // tc.Token uses tc.Admin
		tc.Admin.Cert, tc.Admin.Key, tc.Admin.CA = string(cert), string(key), string(ca)
		return nil
	}
	waitFor(t, 20*time.Second, "web-1 connected", func() error { return agentConnected(admin, "web-1") })
	stop()
	if err := admin.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.RotateCA(ctx, &controllerv1.RotateCARequest{GraceMillis: time.Minute.Milliseconds()})
		return err
	}); err != nil {
		t.Fatalf("RotateCA = %v", err)
	}
	caStatus(t, admin) // the admin renews after it
	clk.Advance(2 * time.Minute)
	waitFor(t, 20*time.Second, "the old CA retired", func() error {
		if st := caStatus(t, admin); st.GetRotating() {
			return errors.New("still rotating")
		}
		return nil
	})
	var logs lockedBuffer
	tc.startAgentWith("web-1", &countingRuntime{}, func(c *agent.Config) {
		c.DataDir, c.Logger = dir, slog.New(slog.NewTextHandler(&logs, nil))
	}, 0)
	waitFor(t, 20*time.Second, "the agent's advice", func() error {
		if s := logs.String(); !strings.Contains(s, "enrol again with a new token") || !strings.Contains(s, "kctl token create --role agent") {
			return fmt.Errorf("agent log: %q", s)
		}
		return nil
	})
	if err := agentConnected(admin, "web-1"); err == nil {
		t.Error("the agent with an old-CA certificate is connected")
	}
}

// The audit checkpoint (signed by the CA) is signed again by the new CA in
// the rotation, so the chain verifies once the old CA is gone.
func TestCARotation_AuditCheckpointSignedByTheNewCA(t *testing.T) {
	clk := clock.NewFake(time.Now())
	tc := &testCluster{Cluster: controllertest.NewCluster(t, 1, controllertest.WithClock(clk),
		controllertest.WithAuditRetention(controller.AuditRetention{MaxEntries: 3})), t: t}
	for i := range 6 {
		tc.Token(controllerv1.Role_ROLE_AGENT, "", "", uint32(i+1), time.Hour)
	}
	st := tc.Nodes[0].C.Store()
	waitFor(t, 10*time.Second, "a checkpoint", func() error {
		clk.Advance(time.Minute)
		if _, _, ok := schema.AuditCheckpoint.Get(st.View(), schema.KeyCheckpoint); !ok {
			return errors.New("none yet")
		}
		return nil
	})
	admin := tc.AdminClient()
	admin.Renewed = func(_, _, _ []byte) error { return nil }
	if err := admin.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.RotateCA(ctx, &controllerv1.RotateCARequest{GraceMillis: time.Hour.Milliseconds()})
		return err
	}); err != nil {
		t.Fatalf("RotateCA = %v", err)
	}
	cp, _, _ := schema.AuditCheckpoint.Get(st.View(), schema.KeyCheckpoint)
	newCA := tc.Nodes[0].C.Credentials().CACert()
	key, _ := newCA.PublicKey.(*ecdsa.PublicKey)
	digest := auditchain.CheckpointDigest(auditchain.Checkpoint{Seq: cp.GetSeq(), Hash: cp.GetHash(), Dropped: cp.GetDropped(), UnixMillis: cp.GetUnixMillis()})
	if !ecdsa.VerifyASN1(key, digest, cp.GetSignature()) {
		t.Error("the audit checkpoint is not signed by the new CA after the rotation")
	}
	// kctl with the admin file (still on the old CA): the status shows the
	// rotation, and kctl saves the renewed credentials; audit verify passes.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	if err := kctl.Run(ctx, []string{"--credentials", tc.AdminPath, "cluster", "ca", "status"}, &out, &errb); err != nil {
		t.Fatalf("kctl cluster ca status = %v, %s", err, errb.String())
	}
	if s := out.String(); !strings.Contains(s, "rotating from "+pki.Digest(tc.Nodes[0].C.Credentials().CACerts()[1].Raw)) || !strings.Contains(s, "ROLE") {
		t.Errorf("kctl cluster ca status printed %q", s)
	}
	f, err := ctlclient.LoadFile(tc.AdminPath)
	if err != nil {
		t.Fatal(err)
	}
	if cr, err := f.Credentials(); err != nil || !cr.OnCurrentCA() || !cr.CACert().Equal(newCA) {
		t.Errorf("the admin credentials file after a kctl command: %v (want renewed from the new CA)", err)
	}
	out.Reset()
	if err := kctl.Run(ctx, []string{"--credentials", tc.AdminPath, "audit", "verify"}, &out, &errb); err != nil {
		t.Errorf("kctl audit verify after the rotation = %v, %s", err, errb.String())
	}
}
