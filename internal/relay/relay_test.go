package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
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
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/pki/pkitest"
	"github.com/kctl-dev/kctl/internal/wirelimit"
)

// identityCtx returns a context whose verified TLS peer is id, as an
// incoming mTLS call's would be.
func identityCtx(t testing.TB, ca *pkitest.TestCA, id pki.Identity) context.Context {
	t.Helper()
	certPEM, _ := ca.Pair(id, 0)
	b, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ti := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: ti})
}

// fakeTunnel is an agent's Tunnel stream as the controller sees it. up
// carries the agent's messages (closed: the agent ended its side); down
// receives the controller's. Both are unbuffered.
type fakeTunnel struct {
	grpc.ServerStream
	ctx  context.Context
	up   chan *streamv1.TunnelUp
	down chan *streamv1.TunnelDown
}

func (f *fakeTunnel) Context() context.Context { return f.ctx }

func (f *fakeTunnel) Recv() (*streamv1.TunnelUp, error) {
	select {
	case m, ok := <-f.up:
		if !ok {
			return nil, io.EOF
		}
		return m, nil
	case <-f.ctx.Done():
		return nil, status.FromContextError(f.ctx.Err()).Err()
	}
}

func (f *fakeTunnel) Send(m *streamv1.TunnelDown) error {
	select {
	case f.down <- m:
		return nil
	case <-f.ctx.Done():
		return status.FromContextError(f.ctx.Err()).Err()
	}
}

// fakeAgent is one tunnel an agent dialled: the test plays the agent
// through up and down; done receives the Tunnel handler's result.
type fakeAgent struct {
	*fakeTunnel
	ctx  context.Context // ends when the Tunnel handler returns
	done chan error
}

// fakeCluster is an in-memory controller: it holds the sessions of held,
// names holders, connects to peers, and plays the agent of each tunnel by
// running the Tunnel handler on a fakeTunnel (dialled as dialAs when set).
type fakeCluster struct {
	t       testing.TB
	ca      *pkitest.TestCA
	s       *Server
	held    map[string]bool
	holders map[string]string
	peers   map[string]grpc.ClientConnInterface
	dialAs  string

	peerCalls atomic.Int32
	tunnels   chan *fakeAgent

	mu     sync.Mutex
	audits []*deployv1.AuditEntry
}

var _ Cluster = (*fakeCluster)(nil)

func newCluster(t testing.TB, ca *pkitest.TestCA, name string, held ...string) *fakeCluster {
	c := &fakeCluster{t: t, ca: ca, held: map[string]bool{}, holders: map[string]string{},
		peers: map[string]grpc.ClientConnInterface{}, tunnels: make(chan *fakeAgent, 4)}
	for _, a := range held {
		c.held[a] = true
	}
	c.s = New(Config{Name: name, OpenTimeout: 2 * time.Second}, c)
	return c
}

func (c *fakeCluster) OpenTunnel(agent, id string) error {
	if !c.held[agent] {
		return ErrNotHeld
	}
	as := agent
	if c.dialAs != "" {
		as = c.dialAs
	}
	ctx, cancel := context.WithCancel(identityCtx(c.t, c.ca, c.ca.Identity(pki.RoleAgent, as, "")))
	ft := &fakeTunnel{ctx: ctx, up: make(chan *streamv1.TunnelUp), down: make(chan *streamv1.TunnelDown)}
	a := &fakeAgent{fakeTunnel: ft, ctx: ctx, done: make(chan error, 1)}
	go func() {
		err := tunnelAPI{s: c.s}.Tunnel(ft)
		cancel() // as gRPC does when a handler returns
		a.done <- err
	}()
	go func() {
		ft.up <- &streamv1.TunnelUp{Msg: &streamv1.TunnelUp_Hello{Hello: &streamv1.TunnelHello{Id: id}}}
	}()
	c.tunnels <- a
	return nil
}

func (c *fakeCluster) Holder(agent string) string { return c.holders[agent] }

func (c *fakeCluster) Peer(name string) (grpc.ClientConnInterface, error) {
	c.peerCalls.Add(1)
	cc, ok := c.peers[name]
	if !ok {
		return nil, errors.New("no such peer")
	}
	return cc, nil
}

func (c *fakeCluster) Audit(_ context.Context, e *deployv1.AuditEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.audits = append(c.audits, e)
}

// nextTunnel returns the next tunnel the cluster's agents dialled.
func (c *fakeCluster) nextTunnel(t testing.TB) *fakeAgent {
	t.Helper()
	select {
	case a := <-c.tunnels:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no tunnel was opened")
		return nil
	}
}

// serve serves c's services on an in-memory listener and returns a client
// connection to them.
func serve(t testing.TB, c *fakeCluster) grpc.ClientConnInterface {
	t.Helper()
	lis := bufconn.Listen(1 << 16)
	g := grpc.NewServer()
	c.s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// logsStream is an operator's Logs call; out is unbuffered, so an operator
// that reads nothing stalls Send.
type logsStream struct {
	grpc.ServerStream
	ctx context.Context
	out chan *streamv1.Output
}

func (l *logsStream) Context() context.Context { return l.ctx }

func (l *logsStream) Send(o *streamv1.Output) error {
	select {
	case l.out <- o:
		return nil
	case <-l.ctx.Done():
		return status.FromContextError(l.ctx.Err()).Err()
	}
}

// startLogs starts a Logs call for agent on c and returns the stream and
// the call's result.
func startLogs(t testing.TB, c *fakeCluster, ctx context.Context, agent string) (*logsStream, chan error) {
	t.Helper()
	ls := &logsStream{ctx: ctx, out: make(chan *streamv1.Output)}
	done := make(chan error, 1)
	req := &streamv1.LogsRequest{Agent: agent, Target: &streamv1.Target{Kind: streamv1.Target_KIND_APP, Service: "web"}, Follow: true}
	go func() { done <- streamAPI{s: c.s}.Logs(req, ls) }()
	return ls, done
}

func operatorCtx(t testing.TB, ca *pkitest.TestCA) context.Context {
	return identityCtx(t, ca, ca.Identity(pki.RoleOperator, "alice", pki.OperatorViewer))
}

func stdout(s string) *streamv1.TunnelUp {
	return &streamv1.TunnelUp{Msg: &streamv1.TunnelUp_Output{Output: &streamv1.Output{Msg: &streamv1.Output_Stdout{Stdout: []byte(s)}}}}
}

// expectOpen reads the Open the controller sends the agent first.
func expectOpen(t testing.TB, a *fakeAgent, agent string) {
	t.Helper()
	select {
	case m := <-a.down:
		if m.GetOpen().GetLogs().GetAgent() != agent {
			t.Fatalf("agent got %v, want the logs open for %s", m, agent)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the agent got no open")
	}
}

func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func TestLogs_PairsTunnelWithWaitingStream(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	c := newCluster(t, ca, "c1", "a1")
	ls, done := startLogs(t, c, operatorCtx(t, ca), "a1")
	a := c.nextTunnel(t)
	expectOpen(t, a, "a1")
	a.up <- stdout("hello\n")
	if got := wait(t, ls.out, "output").GetStdout(); string(got) != "hello\n" {
		t.Fatalf("operator got %q", got)
	}
	close(a.up) // the agent ends the stream
	if err := wait(t, done, "Logs to return"); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if err := wait(t, a.done, "Tunnel to return"); err != nil {
		t.Fatalf("Tunnel: %v", err)
	}
}

func TestTunnel_RefusesWrongAgent(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	c := newCluster(t, ca, "c1", "a1")
	c.s.cfg.OpenTimeout = 300 * time.Millisecond
	c.dialAs = "a2" // another agent answers a1's tunnel id
	_, done := startLogs(t, c, operatorCtx(t, ca), "a1")
	a := c.nextTunnel(t)
	if err := wait(t, a.done, "Tunnel to return"); status.Code(err) != codes.NotFound {
		t.Fatalf("Tunnel from the wrong agent: %v, want NotFound", err)
	}
	if err := wait(t, done, "Logs to return"); status.Code(err) != codes.Unavailable {
		t.Fatalf("Logs: %v, want Unavailable (no tunnel)", err)
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if len(c.s.waiting) != 0 {
		t.Fatalf("%d streams still wait", len(c.s.waiting))
	}
}

func TestLogs_RelaysToHoldingController(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	holder := newCluster(t, ca, "c2", "a1")
	front := newCluster(t, ca, "c1")
	front.holders["a1"] = "c2"
	front.peers["c2"] = serve(t, holder)

	ls, done := startLogs(t, front, operatorCtx(t, ca), "a1")
	a := holder.nextTunnel(t)
	expectOpen(t, a, "a1")
	a.up <- stdout("relayed\n")
	if got := wait(t, ls.out, "output").GetStdout(); string(got) != "relayed\n" {
		t.Fatalf("operator got %q", got)
	}
	close(a.up)
	if err := wait(t, done, "Logs to return"); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if n := holder.peerCalls.Load(); n != 0 {
		t.Fatalf("the holder called %d peers", n)
	}
}

func TestRelay_NeverRelaysTwice(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	// Each controller believes the other holds a1 (a stale view during a
	// move): the relayed open must fail, not bounce back.
	c2 := newCluster(t, ca, "c2")
	c1 := newCluster(t, ca, "c1")
	c1.holders["a1"], c2.holders["a1"] = "c2", "c1"
	c1.peers["c2"] = serve(t, c2)
	c2.peers["c1"] = serve(t, c1)

	_, done := startLogs(t, c1, operatorCtx(t, ca), "a1")
	err := wait(t, done, "Logs to return")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Logs: %v, want Unavailable", err)
	}
	if n := c2.peerCalls.Load(); n != 0 {
		t.Fatalf("the relaying controller relayed again (%d peer calls)", n)
	}
}

func TestLogs_OperatorGoneClosesTunnel(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	c := newCluster(t, ca, "c1", "a1")
	ctx, cancel := context.WithCancel(operatorCtx(t, ca))
	defer cancel()
	_, done := startLogs(t, c, ctx, "a1")
	a := c.nextTunnel(t)
	expectOpen(t, a, "a1")
	cancel() // the operator goes away; the agent is idle
	wait(t, a.ctx.Done(), "the tunnel to end")
	if err := wait(t, done, "Logs to return"); err == nil {
		t.Fatal("Logs returned nil after the operator went away")
	}
}

func TestLogs_StalledReaderBuffersOneMessage(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	c := newCluster(t, ca, "c1", "a1")
	ctx, cancel := context.WithCancel(operatorCtx(t, ca))
	defer cancel()
	ls, _ := startLogs(t, c, ctx, "a1")
	a := c.nextTunnel(t)
	expectOpen(t, a, "a1")
	// The agent writes as fast as the relay takes; the operator reads
	// nothing. The relay may hold the message it is sending, no more.
	var sent atomic.Int32
	go func() {
		for {
			select {
			case a.up <- stdout("x"):
				sent.Add(1)
			case <-a.ctx.Done():
				return
			}
		}
	}()
	// A bounded window: nothing to poll for when the point is that
	// nothing more happens.
	time.Sleep(300 * time.Millisecond)
	if n := sent.Load(); n > 1 {
		t.Fatalf("the relay took %d messages from the agent while the operator read none, want at most 1", n)
	}
	// Reading resumes the flow.
	wait(t, ls.out, "output")
	deadline := time.Now().Add(5 * time.Second)
	for sent.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the flow did not resume")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every field of a stream's opening message arrives from the network: an
// oversized logs request or exec start is refused before anything opens.
func TestLimits_OversizedRequestsAreRefused(t *testing.T) {
	big := strings.Repeat("x", maxExecStartBytes)
	start := &streamv1.ExecStart{Agent: "web-1", Target: &streamv1.Target{Kind: streamv1.Target_KIND_APP}, Reuse: true, Command: []string{"echo", big}}
	if err := checkStart(start, false); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("checkStart(%d-byte command) = %v, want InvalidArgument over the limit", len(big), err)
	}
	start.Command = []string{"echo", "ok"}
	if err := checkStart(start, false); err != nil {
		t.Errorf("checkStart(small command) = %v, want nil", err)
	}
	req := &streamv1.LogsRequest{Agent: "web-1", Target: &streamv1.Target{Kind: streamv1.Target_KIND_APP}, Grep: strings.Repeat("x", maxLogsRequestBytes)}
	if err := (streamAPI{}).Logs(req, nil); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("Logs(%d-byte grep) = %v, want InvalidArgument over the limit", len(req.Grep), err)
	}
}

// execStreamFake is an operator's Exec call: in feeds its inputs.
type execStreamFake struct {
	ctx context.Context
	in  chan *streamv1.ExecInput
	out chan *streamv1.Output
}

func (e *execStreamFake) Context() context.Context { return e.ctx }
func (e *execStreamFake) Recv() (*streamv1.ExecInput, error) {
	select {
	case m := <-e.in:
		return m, nil
	case <-e.ctx.Done():
		return nil, status.FromContextError(e.ctx.Err()).Err()
	}
}
func (e *execStreamFake) Send(o *streamv1.Output) error {
	select {
	case e.out <- o:
		return nil
	case <-e.ctx.Done():
		return status.FromContextError(e.ctx.Err()).Err()
	}
}

// An operator's stdin chunk over wirelimit.MaxStdinChunkBytes ends the
// exec with a clear InvalidArgument, and never reaches the agent; a chunk
// at the limit passes.
func TestExec_OversizedStdinChunkIsRefused(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	c := newCluster(t, ca, "c1", "web-1")
	ctx, cancel := context.WithCancel(identityCtx(t, ca, ca.Identity(pki.RoleOperator, "alice", pki.OperatorDeployer)))
	defer cancel()
	es := &execStreamFake{ctx: ctx, in: make(chan *streamv1.ExecInput, 4), out: make(chan *streamv1.Output, 4)}
	es.in <- &streamv1.ExecInput{Msg: &streamv1.ExecInput_Start{Start: &streamv1.ExecStart{
		Agent: "web-1", Target: &streamv1.Target{Kind: streamv1.Target_KIND_APP, Service: "web"}, Reuse: true, Interactive: true, Command: []string{"cat"},
	}}}
	done := make(chan error, 1)
	go func() { done <- c.s.exec(es, false) }()
	a := c.nextTunnel(t)
	if m := wait(t, a.down, "the open"); m.GetOpen().GetExec() == nil {
		t.Fatalf("agent got %v, want the exec open", m)
	}
	es.in <- &streamv1.ExecInput{Msg: &streamv1.ExecInput_Stdin{Stdin: make([]byte, wirelimit.MaxStdinChunkBytes)}}
	if m := wait(t, a.down, "the stdin chunk at the limit"); len(m.GetInput().GetStdin()) != wirelimit.MaxStdinChunkBytes {
		t.Fatalf("agent got %v, want the stdin chunk", m)
	}
	es.in <- &streamv1.ExecInput{Msg: &streamv1.ExecInput_Stdin{Stdin: make([]byte, wirelimit.MaxStdinChunkBytes+1)}}
	err := wait(t, done, "the exec to end")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "stdin chunk") || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("exec = %v, want InvalidArgument: a stdin chunk over the limit", err)
	}
	select {
	case m := <-a.down:
		t.Fatalf("the agent got %v after the refused chunk", m)
	case <-a.ctx.Done(): // the tunnel was closed
	case <-time.After(5 * time.Second):
		t.Fatal("the tunnel was not closed")
	}
}
