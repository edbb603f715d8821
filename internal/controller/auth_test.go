package controller_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/pki/pkitest"
)

// rawConn dials addr with a hand-made TLS config (it does not verify the
// server: these tests are about what the server accepts).
func rawConn(t testing.TB, addr string, certs ...tls.Certificate) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, Certificates: certs, MinVersion: tls.VersionTLS13}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func pair(t testing.TB, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clusterCA loads the cluster's real CA from a controller's Raft state.
func clusterCA(t testing.TB, tc *testCluster) *pki.CA {
	t.Helper()
	ca, err := tc.Nodes[0].C.CA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func wantCode(t testing.TB, what string, err error, code codes.Code, msgPart string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), msgPart) {
		t.Fatalf("%s = %v, want %s containing %q", what, err, code, msgPart)
	}
}

func clusterStatus(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := controllerv1.NewControllerServiceClient(cc).ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{})
	return err
}

// TestAuth_NegativeMatrix runs one refused case per row against a real
// controller (real gRPC server, real mutual TLS, real Raft state).
func TestAuth_NegativeMatrix(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	addr := tc.Nodes[0].API
	ca := clusterCA(t, tc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("no client certificate", func(t *testing.T) {
		wantCode(t, "ClusterStatus", clusterStatus(ctx, rawConn(t, addr)), codes.Unauthenticated, "requires a client certificate")
	})

	// refusedAdmin has sign certify an admin key and wants the TLS
	// handshake with that certificate refused.
	refusedAdmin := func(t *testing.T, what string, sign func(csr []byte, id pki.Identity) ([]byte, error)) {
		key, _ := pki.NewKey()
		id := pki.Identity{ClusterID: ca.ClusterID(), Role: pki.RoleOperator, Name: "admin", OperatorRole: pki.OperatorAdmin}
		csr, _ := pki.NewCSR(key, id)
		cert, err := sign(csr, id)
		if err != nil {
			t.Fatal(err)
		}
		err = clusterStatus(ctx, rawConn(t, addr, pair(t, cert, key)))
		if err == nil || status.Code(err) != codes.Unavailable {
			t.Fatalf("ClusterStatus with %s = %v, want the handshake refused", what, err)
		}
	}

	t.Run("certificate from another CA", func(t *testing.T) {
		// An impostor CA for the same cluster ID, naming the real admin.
		other, err := pki.NewCA(ca.ClusterID())
		if err != nil {
			t.Fatal(err)
		}
		refusedAdmin(t, "a foreign certificate", func(csr []byte, id pki.Identity) ([]byte, error) { return other.Sign(csr, id, time.Hour) })
	})

	t.Run("expired certificate", func(t *testing.T) {
		refusedAdmin(t, "an expired certificate", func(csr []byte, id pki.Identity) ([]byte, error) {
			return ca.SignAt(csr, id, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
		})
	})

	t.Run("revoked agent", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "gone")
		_, err := agent.New(ctx, agent.Config{Name: "gone", DataDir: dir, Controllers: []string{addr}, Runtime: &agent.FakeRuntime{},
			Token: tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour), Logger: tc.Logger})
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.AdminClient().Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			_, err := cc.RemoveAgent(ctx, &controllerv1.RemoveAgentRequest{Name: "gone"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		cert, _ := os.ReadFile(filepath.Join(dir, "agent.crt"))
		key, _ := os.ReadFile(filepath.Join(dir, "agent.key"))
		st, err := agentv1.NewSessionServiceClient(rawConn(t, addr, pair(t, cert, key))).Session(ctx)
		if err == nil {
			_ = st.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: &agentv1.Hello{Name: "gone"}}})
			_, err = st.Recv()
		}
		wantCode(t, "Session of a removed agent", err, codes.Unauthenticated, "revoked")
	})

	t.Run("agent certificate calling an operator method", func(t *testing.T) {
		key, _ := pki.NewKey()
		a, err := ctlclient.Join(ctx, []string{addr}, mustToken(t, tc, controllerv1.Role_ROLE_AGENT, "", ""), &controllerv1.JoinRequest{
			Token: tc.lastToken, CsrPem: mustCSR(t, key), Name: "web-x"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = controllerv1.NewControllerServiceClient(rawConn(t, addr, pair(t, a.GetCertPem(), key))).ListAgents(ctx, &controllerv1.ListAgentsRequest{})
		wantCode(t, "ListAgents as an agent", err, codes.PermissionDenied, "may not call")
	})

	t.Run("viewer calling a mutating method", func(t *testing.T) {
		key, _ := pki.NewKey()
		v, err := ctlclient.Join(ctx, []string{addr}, mustToken(t, tc, controllerv1.Role_ROLE_OPERATOR, "vera", "viewer"), &controllerv1.JoinRequest{
			Token: tc.lastToken, CsrPem: mustCSR(t, key)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		cc := controllerv1.NewControllerServiceClient(rawConn(t, addr, pair(t, v.GetCertPem(), key)))
		if _, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{}); err != nil {
			t.Fatalf("ListAgents as a viewer = %v, want allowed", err)
		}
		_, err = cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT})
		wantCode(t, "CreateToken as a viewer", err, codes.PermissionDenied, "may not call")
		_, err = cc.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-x", Operation: noop("x")})
		wantCode(t, "SendCommand as a viewer", err, codes.PermissionDenied, "may not call")
	})

	t.Run("token past its uses", func(t *testing.T) {
		tok := mustToken(t, tc, controllerv1.Role_ROLE_AGENT, "", "")
		join := func(name string) error {
			key, _ := pki.NewKey()
			_, err := ctlclient.Join(ctx, []string{addr}, tok, &controllerv1.JoinRequest{Token: tok.String(), CsrPem: mustCSR(t, key), Name: name}, 0)
			return err
		}
		if err := join("once-1"); err != nil {
			t.Fatalf("first join = %v", err)
		}
		err := join("once-2")
		if !errors.Is(err, ctlclient.ErrTokenRejected) || !strings.Contains(err.Error(), "used up") {
			t.Fatalf("second join with a one-use token = %v, want rejected as used up", err)
		}
	})

	t.Run("token past its TTL", func(t *testing.T) {
		var tokStr string
		if err := tc.AdminClient().Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			r, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT, TtlSeconds: 1, Uses: 1000})
			tokStr = r.GetToken()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		tok, _ := pki.ParseToken(tokStr)
		n := 0
		var last error
		waitFor(t, 5*time.Second, "the token to expire", func() error {
			n++
			key, _ := pki.NewKey()
			_, last = ctlclient.Join(ctx, []string{addr}, tok, &controllerv1.JoinRequest{Token: tokStr, CsrPem: mustCSR(t, key), Name: "ttl-" + string(rune('a'+n%26)) + strings.Repeat("x", n/26)}, 0)
			if last == nil || !strings.Contains(last.Error(), "expired") {
				return errors.New("still accepted")
			}
			return nil
		})
		if !errors.Is(last, ctlclient.ErrTokenRejected) {
			t.Fatalf("join with an expired token = %v, want ErrTokenRejected", last)
		}
	})

	t.Run("token whose CA digest does not match", func(t *testing.T) {
		foreign, _ := pkitest.NewTestCA(t).Token()
		_, err := agent.New(ctx, agent.Config{Name: "impostor-victim", DataDir: t.TempDir(), Controllers: []string{addr},
			Runtime: &agent.FakeRuntime{}, Token: foreign.String(), Logger: tc.Logger})
		t.Logf("agent.New with a foreign token: %v", err)
		if !errors.Is(err, agent.ErrTokenRejected) || !strings.Contains(err.Error(), "does not match the token's digest") {
			t.Fatalf("agent.New with a token for another CA = %v, want ErrTokenRejected naming the CA", err)
		}
	})
}

func mustCSR(t testing.TB, key []byte) []byte {
	t.Helper()
	csr, err := pki.NewCSR(key, pki.Identity{Role: pki.RoleAgent, Name: "csr"})
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func mustToken(t testing.TB, tc *testCluster, role controllerv1.Role, name, opRole string) pki.Token {
	t.Helper()
	tc.lastToken = tc.Token(role, name, opRole, 1, time.Hour)
	tok, err := pki.ParseToken(tc.lastToken)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
