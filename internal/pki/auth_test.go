package pki_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/pki/pkitest"
)

// A tiny hand-registered service: every unary method answers who called it.
const (
	mRead     = "/kctl.pkitest.v1.Test/Read"     // every role
	mMutate   = "/kctl.pkitest.v1.Test/Mutate"   // admin, deployer
	mAdmin    = "/kctl.pkitest.v1.Test/Admin"    // admin
	mAgent    = "/kctl.pkitest.v1.Test/Agent"    // agents
	mJoin     = "/kctl.pkitest.v1.Test/Join"     // public
	mUnlisted = "/kctl.pkitest.v1.Test/Unlisted" // registered, not in the policy
	mForward  = "/kctl.pkitest.v1.Test/Forward"  // operators; forwards to Admin elsewhere
	mEcho     = "/kctl.pkitest.v1.Test/Echo"     // bidi stream, every role
)

var allRoles = []pki.Role{pki.RoleController, pki.RoleAgent, pki.RoleOperator}

var testPolicy = pki.Policy{
	mRead:    {Roles: allRoles},
	mMutate:  {Roles: []pki.Role{pki.RoleOperator}, OperatorRoles: []pki.OperatorRole{pki.OperatorAdmin, pki.OperatorDeployer}},
	mAdmin:   {Roles: []pki.Role{pki.RoleOperator}, OperatorRoles: []pki.OperatorRole{pki.OperatorAdmin}},
	mAgent:   {Roles: []pki.Role{pki.RoleAgent}},
	mJoin:    {Public: true},
	mForward: {Roles: []pki.Role{pki.RoleOperator}},
	mEcho:    {Roles: allRoles},
}

type testService struct {
	calls   atomic.Int64     // handler invocations
	forward *grpc.ClientConn // Forward's target, set before serving
}

// who describes the caller: its identity (or "anonymous") and the serial of
// the direct peer's certificate.
func who(ctx context.Context) string {
	s := "anonymous"
	if id, err := pki.RemoteIdentity(ctx); err == nil {
		s = id.String()
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			s += " serial=" + pki.Serial(ti.State.PeerCertificates[0])
		}
	}
	return s
}

func (s *testService) unary(method string) grpc.MethodDesc {
	name := method[strings.LastIndex(method, "/")+1:]
	return grpc.MethodDesc{MethodName: name, Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) {
			s.calls.Add(1)
			if method != mForward {
				return wrapperspb.String(who(ctx)), nil
			}
			id, err := pki.RemoteIdentity(ctx)
			if err != nil {
				return nil, err
			}
			out := new(wrapperspb.StringValue)
			if err := s.forward.Invoke(pki.WithIdentity(ctx, id), mAdmin, in, out); err != nil {
				return nil, err
			}
			return out, nil
		}
		if ic == nil {
			return h(ctx, in)
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: s, FullMethod: method}, h)
	}}
}

var echoDesc = grpc.StreamDesc{StreamName: "Echo", ServerStreams: true, ClientStreams: true}

func (s *testService) desc() *grpc.ServiceDesc {
	d := &grpc.ServiceDesc{ServiceName: "kctl.pkitest.v1.Test", HandlerType: (*any)(nil)}
	for _, m := range []string{mRead, mMutate, mAdmin, mAgent, mJoin, mUnlisted, mForward} {
		d.Methods = append(d.Methods, s.unary(m))
	}
	echo := echoDesc
	echo.Handler = func(_ any, ss grpc.ServerStream) error {
		for {
			in := new(wrapperspb.StringValue)
			if err := ss.RecvMsg(in); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			s.calls.Add(1)
			if err := ss.SendMsg(wrapperspb.String(in.GetValue() + " from " + who(ss.Context()))); err != nil {
				return err
			}
		}
	}
	d.Streams = []grpc.StreamDesc{echo}
	return d
}

// revocations is a concurrency-safe revocation list by name or serial.
type revocations struct {
	mu sync.Mutex
	// keys are "name:<name>" and "serial:<serial>"; guarded by mu.
	keys map[string]bool
}

func (r *revocations) revokeName(name string) { r.add("name:" + name) }

func (r *revocations) revokeSerial(serial string) { r.add("serial:" + serial) }

func (r *revocations) add(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = map[string]bool{}
	}
	r.keys[key] = true
}

func (r *revocations) revoked(id pki.Identity, serial string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys["name:"+id.Name] || (serial != "" && r.keys["serial:"+serial])
}

// server is one running test server.
type server struct {
	addr  string
	svc   *testService
	rev   *revocations
	skew  atomic.Int64 // added to the Authorizer's clock, in nanoseconds
	creds *pki.Credentials
}

// serve starts the test service on 127.0.0.1:0 with creds and an
// Authorizer for clusterID over the test policy.
func serve(t *testing.T, creds *pki.Credentials, clusterID string, forward *grpc.ClientConn) *server {
	t.Helper()
	s := &server{svc: &testService{forward: forward}, rev: &revocations{}, creds: creds}
	auth := &pki.Authorizer{
		Policy:    testPolicy,
		ClusterID: clusterID,
		Revoked:   s.rev.revoked,
		Now:       func() time.Time { return time.Now().Add(time.Duration(s.skew.Load())) },
		Roots:     creds.CAPool(),
	}
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(creds.ServerTLS())),
		grpc.UnaryInterceptor(auth.UnaryInterceptor()),
		grpc.StreamInterceptor(auth.StreamInterceptor()),
	)
	gs.RegisterService(s.svc.desc(), s.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	s.addr = lis.Addr().String()
	return s
}

func dial(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func call(ctx context.Context, t *testing.T, cc *grpc.ClientConn, method string, opts ...grpc.CallOption) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, method, wrapperspb.String("hi"), out, opts...)
	return out.GetValue(), err
}

func wantCode(t *testing.T, what string, err error, want codes.Code, wantMsg string) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: code = %v (%v), want %v", what, got, err, want)
	}
	if wantMsg != "" && !strings.Contains(status.Convert(err).Message(), wantMsg) {
		t.Errorf("%s: message = %q, want it to contain %q", what, status.Convert(err).Message(), wantMsg)
	}
}

// clientWithCert returns a client config that trusts ca's controllers but
// presents other's certificate (foreign or expired credentials).
func clientWithCert(ca *pkitest.TestCA, other *pki.Credentials) *tls.Config {
	cfg := other.ClientTLS(pki.RoleController)
	cfg.VerifyConnection = ca.Agent("verifier").ClientTLS(pki.RoleController).VerifyConnection
	return cfg
}

func TestAuthorizer_Allowed(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	srv := serve(t, ca.Controller("c1"), ca.ClusterID, nil)
	tests := []struct {
		name   string
		creds  *pki.Credentials
		method string
		want   string
	}{
		{"agent reads", ca.Agent("web-1"), mRead, "agent web-1"},
		{"agent calls an agent method", ca.Agent("web-1"), mAgent, "agent web-1"},
		{"controller reads", ca.Controller("c2"), mRead, "controller c2"},
		{"viewer reads", ca.Operator("carol", pki.OperatorViewer), mRead, "operator carol (viewer)"},
		{"deployer mutates", ca.Operator("bob", pki.OperatorDeployer), mMutate, "operator bob (deployer)"},
		{"admin mutates", ca.Operator("alice", pki.OperatorAdmin), mMutate, "operator alice (admin)"},
		{"admin calls an admin method", ca.Operator("alice", pki.OperatorAdmin), mAdmin, "operator alice (admin)"},
		{"agent calls a public method", ca.Agent("web-1"), mJoin, "agent web-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := dial(t, srv.addr, tt.creds.ClientTLS(pki.RoleController))
			got, err := call(t.Context(), t, cc, tt.method)
			if err != nil {
				t.Fatalf("%s: %v", tt.method, err)
			}
			if !strings.HasPrefix(got, tt.want+" serial=") {
				t.Errorf("%s = %q, want %q", tt.method, got, tt.want)
			}
		})
	}
	t.Run("joiner without a certificate calls a public method", func(t *testing.T) {
		cc := dial(t, srv.addr, pki.PinnedClientTLS(ca.Digest()))
		var p peer.Peer
		got, err := call(t.Context(), t, cc, mJoin, grpc.Peer(&p))
		if err != nil || got != "anonymous" {
			t.Fatalf("Join = %q, %v; want anonymous, nil", got, err)
		}
		pinned, err := pki.PinnedCA(p.AuthInfo.(credentials.TLSInfo).State, ca.Digest())
		if err != nil {
			t.Fatalf("PinnedCA: %v", err)
		}
		if got, want := pki.Digest(pinned.Raw), ca.Digest(); got != want {
			t.Errorf("pinned CA digest = %s, want %s", got, want)
		}
	})
}

// TestAuthorizer_NegativeMatrix is the mutual-TLS negative matrix: one case
// for each way a caller must be refused.
func TestAuthorizer_NegativeMatrix(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	srv := serve(t, ca.Controller("c1"), ca.ClusterID, nil)
	agentID := ca.Identity(pki.RoleAgent, "web-1", "")

	// refusedAtHandshake checks a call fails in the transport and no handler
	// runs. The message varies (the TLS alert, or a broken pipe when the
	// server closes first), so wantMsg is usually empty.
	refusedAtHandshake := func(t *testing.T, cfg *tls.Config, wantMsg string) {
		t.Helper()
		before := srv.svc.calls.Load()
		_, err := call(t.Context(), t, dial(t, srv.addr, cfg), mRead)
		wantCode(t, "Read", err, codes.Unavailable, wantMsg)
		if got := srv.svc.calls.Load(); got != before {
			t.Errorf("handler ran %d times, want 0", got-before)
		}
	}

	t.Run("no client certificate on a non-public method", func(t *testing.T) {
		_, err := call(t.Context(), t, dial(t, srv.addr, ca.NoCertClientTLS()), mRead)
		wantCode(t, "Read", err, codes.Unauthenticated, "requires a client certificate")
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		refusedAtHandshake(t, clientWithCert(ca, ca.Foreign(agentID)), "")
	})
	t.Run("expired certificate", func(t *testing.T) {
		refusedAtHandshake(t, clientWithCert(ca, ca.Expired(agentID)), "")
	})
	t.Run("certificate expires while the connection is open", func(t *testing.T) {
		srv := serve(t, ca.Controller("c1"), ca.ClusterID, nil)
		cc := dial(t, srv.addr, ca.Agent("web-1").ClientTLS(pki.RoleController))
		if _, err := call(t.Context(), t, cc, mRead); err != nil {
			t.Fatalf("Read before expiry: %v", err)
		}
		srv.skew.Store(int64(pki.DefaultNodeValidity + time.Hour))
		_, err := call(t.Context(), t, cc, mRead)
		wantCode(t, "Read after expiry", err, codes.Unauthenticated, "certificate expired")
	})
	t.Run("revoked identity on a unary call", func(t *testing.T) {
		srv := serve(t, ca.Controller("c1"), ca.ClusterID, nil)
		cc := dial(t, srv.addr, ca.Agent("web-1").ClientTLS(pki.RoleController))
		if _, err := call(t.Context(), t, cc, mRead); err != nil {
			t.Fatalf("Read before revocation: %v", err)
		}
		srv.rev.revokeName("web-1")
		_, err := call(t.Context(), t, cc, mRead)
		wantCode(t, "Read after revocation", err, codes.Unauthenticated, "certificate revoked")
	})
	t.Run("revoked certificate serial on a unary call", func(t *testing.T) {
		srv := serve(t, ca.Controller("c1"), ca.ClusterID, nil)
		cr := ca.Agent("web-2")
		srv.rev.revokeSerial(pki.Serial(cr.Leaf()))
		_, err := call(t.Context(), t, dial(t, srv.addr, cr.ClientTLS(pki.RoleController)), mRead)
		wantCode(t, "Read", err, codes.Unauthenticated, "certificate revoked")
	})
	t.Run("revoked identity on the next stream message", func(t *testing.T) {
		srv := serve(t, ca.Controller("c1"), ca.ClusterID, nil)
		cc := dial(t, srv.addr, ca.Agent("web-1").ClientTLS(pki.RoleController))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		st, err := cc.NewStream(ctx, &echoDesc, mEcho)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg(wrapperspb.String("one")); err != nil {
			t.Fatal(err)
		}
		out := new(wrapperspb.StringValue)
		if err := st.RecvMsg(out); err != nil {
			t.Fatalf("first message: %v", err)
		}
		if got, want := out.GetValue(), "one from agent web-1"; !strings.HasPrefix(got, want) {
			t.Errorf("first reply = %q, want %q", got, want)
		}
		srv.rev.revokeName("web-1")
		if err := st.SendMsg(wrapperspb.String("two")); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		err = st.RecvMsg(out)
		wantCode(t, "stream after revocation", err, codes.Unauthenticated, "certificate revoked")
	})
	for _, tt := range []struct {
		name   string
		creds  *pki.Credentials
		method string
		what   string // the method, as wantCode names it
		want   string // in the error message
	}{
		{"agent certificate calling an operator-only method", ca.Agent("web-1"), mAdmin, "Admin", "agent web-1 may not call"},
		{"viewer calling a mutating method", ca.Operator("carol", pki.OperatorViewer), mMutate, "Mutate", "operator carol (viewer) may not call"},
		{"deployer calling an admin method", ca.Operator("bob", pki.OperatorDeployer), mAdmin, "Admin", ""},
		{"operator calling an agent method", ca.Operator("alice", pki.OperatorAdmin), mAgent, "Agent", ""},
		{"method missing from the policy", ca.Operator("alice", pki.OperatorAdmin), mUnlisted, "Unlisted", "not in the authorization policy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := call(t.Context(), t, dial(t, srv.addr, tt.creds.ClientTLS(pki.RoleController)), tt.method)
			wantCode(t, tt.what, err, codes.PermissionDenied, tt.want)
		})
	}
	t.Run("authorizer for another cluster", func(t *testing.T) {
		srv := serve(t, ca.Controller("c1"), "another-cluster", nil)
		_, err := call(t.Context(), t, dial(t, srv.addr, ca.Agent("web-1").ClientTLS(pki.RoleController)), mRead)
		wantCode(t, "Read", err, codes.PermissionDenied, "another-cluster")
	})
	t.Run("revoked certificate on a public method is anonymous", func(t *testing.T) {
		srv := serve(t, ca.Controller("c1"), ca.ClusterID, nil)
		srv.rev.revokeName("web-9")
		got, err := call(t.Context(), t, dial(t, srv.addr, ca.Agent("web-9").ClientTLS(pki.RoleController)), mJoin)
		if err != nil || !strings.HasPrefix(got, "anonymous") {
			t.Errorf("Join = %q, %v; want anonymous, nil", got, err)
		}
	})
	t.Run("token with a wrong secret", func(t *testing.T) {
		tok, hash := ca.Token()
		wrong, _ := ca.Token()
		forged := pki.Token{CADigest: tok.CADigest, Secret: wrong.Secret}
		parsed, err := pki.ParseToken(forged.String())
		if err != nil {
			t.Fatal(err)
		}
		if pki.SecretMatches(hash, parsed.Secret) {
			t.Errorf("SecretMatches(hash, wrong secret) = true, want false")
		}
	})
	t.Run("token with a malformed secret", func(t *testing.T) {
		tok, _ := ca.Token()
		_, err := pki.ParseToken("KCTL1-" + tok.CADigest + "-not_a_secret!")
		if !errors.Is(err, pki.ErrMalformedToken) {
			t.Errorf("ParseToken(malformed secret) error = %v, want ErrMalformedToken", err)
		}
	})
	t.Run("pinned client against a server from another CA", func(t *testing.T) {
		impostor := serve(t, ca.Foreign(ca.Identity(pki.RoleController, "c1", "")), ca.ClusterID, nil)
		before := impostor.svc.calls.Load()
		_, err := call(t.Context(), t, dial(t, impostor.addr, pki.PinnedClientTLS(ca.Digest())), mJoin)
		wantCode(t, "Join at an impostor", err, codes.Unavailable, "")
		if got := impostor.svc.calls.Load(); got != before {
			t.Errorf("impostor handler ran %d times, want 0", got-before)
		}
	})
}

// tlsServe accepts TLS connections on 127.0.0.1:0 with cfg and completes
// their handshakes; it returns the address.
func tlsServe(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte("k")) // accepted
					_, _ = io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	return lis.Addr().String()
}

func tlsDial(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	d := &tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	// TLS 1.3: the server's verdict on our certificate arrives after the
	// client's handshake: a byte if it accepted us, an alert if not.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestPinnedClientTLS(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	c1 := ca.Identity(pki.RoleController, "c1", "")
	t.Run("genuine controller", func(t *testing.T) {
		addr := tlsServe(t, ca.Credentials(c1).ServerTLS())
		if err := tlsDial(t, addr, pki.PinnedClientTLS(ca.Digest())); err != nil {
			t.Errorf("pinned dial to the genuine controller: %v", err)
		}
	})
	t.Run("server from another CA", func(t *testing.T) {
		addr := tlsServe(t, ca.Foreign(c1).ServerTLS())
		err := tlsDial(t, addr, pki.PinnedClientTLS(ca.Digest()))
		if !errors.Is(err, pki.ErrCADigestMismatch) {
			t.Errorf("pinned dial to an impostor: error = %v, want ErrCADigestMismatch", err)
		}
	})
	t.Run("impostor presenting the pinned CA certificate", func(t *testing.T) {
		cert, key := ca.ForeignCA().Pair(c1, time.Hour)
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		pair.Certificate = append(pair.Certificate, ca.Cert.Raw) // the genuine CA, but it did not sign the leaf
		addr := tlsServe(t, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}})
		err = tlsDial(t, addr, pki.PinnedClientTLS(ca.Digest()))
		if !errors.Is(err, pki.ErrUntrusted) {
			t.Errorf("pinned dial to an impostor with the genuine CA in its chain: error = %v, want ErrUntrusted", err)
		}
	})
	t.Run("genuine CA but the server is not a controller", func(t *testing.T) {
		// Agent certificates are not server certificates.
		addr := tlsServe(t, ca.Agent("web-1").ServerTLS())
		if err := tlsDial(t, addr, pki.PinnedClientTLS(ca.Digest())); !errors.Is(err, pki.ErrUntrusted) {
			t.Errorf("pinned dial to an agent: error = %v, want ErrUntrusted", err)
		}
	})
}

func TestClientTLS_VerifiesRole(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	addr := tlsServe(t, ca.Controller("c1").ServerTLS())
	if err := tlsDial(t, addr, ca.Agent("web-1").ClientTLS(pki.RoleController)); err != nil {
		t.Errorf("ClientTLS(controller) to a controller: %v", err)
	}
	if err := tlsDial(t, addr, ca.Agent("web-1").ClientTLS(pki.RoleAgent)); !errors.Is(err, pki.ErrWrongRole) {
		t.Errorf("ClientTLS(agent) to a controller: error = %v, want ErrWrongRole", err)
	}
	foreign := tlsServe(t, ca.Foreign(ca.Identity(pki.RoleController, "c1", "")).ServerTLS())
	if err := tlsDial(t, foreign, ca.Agent("web-1").ClientTLS(pki.RoleController)); !errors.Is(err, pki.ErrUntrusted) {
		t.Errorf("ClientTLS to a controller from another CA: error = %v, want ErrUntrusted", err)
	}
}

func TestServerTLSForRoles(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	addr := tlsServe(t, ca.Controller("c1").ServerTLSForRoles(pki.RoleController))
	if err := tlsDial(t, addr, ca.Controller("c2").ClientTLS(pki.RoleController)); err != nil {
		t.Errorf("controller to a controllers-only listener: %v", err)
	}
	if err := tlsDial(t, addr, ca.Agent("web-1").ClientTLS(pki.RoleController)); err == nil {
		t.Errorf("agent to a controllers-only listener: error = nil, want a refused handshake")
	}
	if err := tlsDial(t, addr, ca.NoCertClientTLS()); err == nil {
		t.Errorf("no certificate to a controllers-only listener: error = nil, want a refused handshake")
	}
}

func TestCredentials_RenewalAppliesToNewConnections(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	serverCreds := ca.Controller("c1")
	srv := serve(t, serverCreds, ca.ClusterID, nil)
	id := ca.Identity(pki.RoleAgent, "web-1", "")
	cr := ca.Credentials(id)
	oldSerial := pki.Serial(cr.Leaf())

	oldConn := dial(t, srv.addr, cr.ClientTLS(pki.RoleController))
	if got, err := call(t.Context(), t, oldConn, mRead); err != nil || got != "agent web-1 serial="+oldSerial {
		t.Fatalf("Read before renewal = %q, %v; want serial %s", got, err, oldSerial)
	}
	if err := cr.Update(ca.Pair(id, time.Hour)); err != nil {
		t.Fatal(err)
	}
	newSerial := pki.Serial(cr.Leaf())
	got, err := call(t.Context(), t, dial(t, srv.addr, cr.ClientTLS(pki.RoleController)), mRead)
	if err != nil || got != "agent web-1 serial="+newSerial {
		t.Errorf("Read on a new connection after renewal = %q, %v; want serial %s", got, err, newSerial)
	}
	// The existing connection keeps the certificate of its handshake.
	if got, err := call(t.Context(), t, oldConn, mRead); err != nil || got != "agent web-1 serial="+oldSerial {
		t.Errorf("Read on the old connection = %q, %v; want serial %s", got, err, oldSerial)
	}

	// The server side renews without restarting its listener.
	if err := serverCreds.Update(ca.Pair(ca.Identity(pki.RoleController, "c1", ""), time.Hour)); err != nil {
		t.Fatal(err)
	}
	var p peer.Peer
	if _, err := call(t.Context(), t, dial(t, srv.addr, cr.ClientTLS(pki.RoleController)), mRead, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	gotServer := pki.Serial(p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0])
	if want := pki.Serial(serverCreds.Leaf()); gotServer != want {
		t.Errorf("server certificate after server renewal = %s, want %s", gotServer, want)
	}
}

func TestAuthorizer_ForwardedIdentity(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	leader := serve(t, ca.Controller("c1"), ca.ClusterID, nil)
	follower := serve(t, ca.Controller("c2"), ca.ClusterID,
		dial(t, leader.addr, ca.Controller("c2").ClientTLS(pki.RoleController)))
	aliceID := ca.Identity(pki.RoleOperator, "alice", pki.OperatorAdmin)
	alice := ca.Credentials(aliceID)

	t.Run("controller forwards an admin", func(t *testing.T) {
		got, err := call(t.Context(), t, dial(t, follower.addr, alice.ClientTLS(pki.RoleController)), mForward)
		if err != nil {
			t.Fatalf("Forward: %v", err)
		}
		// The leader sees alice as the caller over c2's connection.
		if want := "operator alice (admin) serial="; !strings.HasPrefix(got, want) {
			t.Errorf("Forward = %q, want prefix %q", got, want)
		}
		if strings.HasSuffix(got, pki.Serial(alice.Leaf())) {
			t.Errorf("Forward = %q: the direct peer serial should be c2's, not alice's", got)
		}
	})
	t.Run("forwarded viewer is still a viewer", func(t *testing.T) {
		_, err := call(t.Context(), t, dial(t, follower.addr, ca.Operator("carol", pki.OperatorViewer).ClientTLS(pki.RoleController)), mForward)
		wantCode(t, "Forward(viewer → Admin)", err, codes.PermissionDenied, "operator carol (viewer) may not call")
	})
	t.Run("forwarded certificate revoked at the leader", func(t *testing.T) {
		dave := ca.Operator("dave", pki.OperatorAdmin)
		leader.rev.revokeSerial(pki.Serial(dave.Leaf()))
		_, err := call(t.Context(), t, dial(t, follower.addr, dave.ClientTLS(pki.RoleController)), mForward)
		wantCode(t, "Forward(revoked)", err, codes.Unauthenticated, "certificate revoked")
	})
	t.Run("identity without a certificate from a controller", func(t *testing.T) {
		cc := dial(t, leader.addr, ca.Controller("c3").ClientTLS(pki.RoleController))
		got, err := call(pki.WithIdentity(t.Context(), aliceID), t, cc, mAdmin)
		if err != nil || !strings.HasPrefix(got, "operator alice (admin)") {
			t.Errorf("Admin with a forwarded identity from c3 = %q, %v; want alice", got, err)
		}
	})
	t.Run("agent may not forward an identity", func(t *testing.T) {
		cc := dial(t, leader.addr, ca.Agent("web-1").ClientTLS(pki.RoleController))
		_, err := call(pki.WithIdentity(t.Context(), aliceID), t, cc, mRead)
		wantCode(t, "Read with a forwarded identity from an agent", err, codes.PermissionDenied, "may not forward")
	})
	t.Run("operator may not forward an identity", func(t *testing.T) {
		cc := dial(t, leader.addr, ca.Operator("carol", pki.OperatorViewer).ClientTLS(pki.RoleController))
		_, err := call(pki.WithIdentity(t.Context(), aliceID), t, cc, mAdmin)
		wantCode(t, "Admin with a forwarded identity from a viewer", err, codes.PermissionDenied, "may not forward")
	})
	t.Run("forwarded identity of another cluster", func(t *testing.T) {
		cc := dial(t, leader.addr, ca.Controller("c3").ClientTLS(pki.RoleController))
		other := aliceID
		other.ClusterID = "other"
		_, err := call(pki.WithIdentity(t.Context(), other), t, cc, mAdmin)
		wantCode(t, "Admin with a forwarded identity of another cluster", err, codes.PermissionDenied, "")
	})
}
