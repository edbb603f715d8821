package dispatcher_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/dispatcher"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/schema"
)

// fixture is a Dispatcher named c1 running over a MemCluster that holds
// the cluster record, c1's node record and the agents named.
type fixture struct {
	t       *testing.T
	cluster *dispatcher.MemCluster
	d       *dispatcher.Dispatcher
	ca      *pki.CA
	removed atomic.Bool
}

func newFixture(t *testing.T, agents ...string) *fixture {
	t.Helper()
	ca, err := pki.NewCA("cluster-1")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, cluster: dispatcher.NewMemCluster("127.0.0.1:7001"), ca: ca}
	muts := []*raftcmdv1.Mutation{
		schema.Cluster.Put(schema.KeyCA, &controllerv1.ClusterRecord{ClusterId: "cluster-1"}),
		schema.Nodes.Put("c1", &controllerv1.NodeRecord{Name: "c1"}),
	}
	for _, a := range agents {
		muts = append(muts, schema.Agents.Put(a, &controllerv1.AgentRecord{Name: a}))
	}
	f.write(&raftcmdv1.Command{Mutations: muts})
	f.d = dispatcher.New(dispatcher.Config{
		Name: "c1", HeartbeatInterval: 10 * time.Second, PresenceInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler), OnRemoved: func() { f.removed.Store(true) },
	}, f.cluster)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.d.Run(ctx)
	}()
	t.Cleanup(func() {
		f.d.Close()
		cancel()
		<-done
	})
	return f
}

func (f *fixture) write(cmd *raftcmdv1.Command) {
	f.t.Helper()
	res, err := f.cluster.Write(context.Background(), cmd)
	if err != nil || !res.GetApplied() {
		f.t.Fatalf("Write = %v, %v", res, err)
	}
}

// command records a pending command for agent.
func (f *fixture) command(agent, id, payload string) {
	f.t.Helper()
	f.write(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Commands.Put(schema.CommandKey(agent, id), &controllerv1.CommandRecord{
		Id: id, Agent: agent, State: controllerv1.CommandState_COMMAND_STATE_PENDING,
		Operation: &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: payload}}},
	})}})
}

// stream is an agent's end of a Session stream, served by the Dispatcher.
type stream struct {
	grpc.ServerStream // not used: Context, Send and Recv are
	ctx               context.Context
	cancel            context.CancelFunc
	in                chan *agentv1.SessionRequest
	out               chan *agentv1.SessionResponse
	// err is what Session returned, once it returned.
	err chan error
}

func (s *stream) Context() context.Context { return s.ctx }

func (s *stream) Send(m *agentv1.SessionResponse) error {
	select {
	case s.out <- m:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *stream) Recv() (*agentv1.SessionRequest, error) {
	select {
	case m, ok := <-s.in:
		if !ok {
			return nil, io.EOF
		}
		return m, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// connect opens a session for an agent whose certificate names certName and
// sends a Hello naming hello.
func (f *fixture) connect(certName string, hello *agentv1.Hello) *stream {
	f.t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		f.t.Fatal(err)
	}
	id := pki.Identity{ClusterID: "cluster-1", Role: pki.RoleAgent, Name: certName}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		f.t.Fatal(err)
	}
	certPEM, err := f.ca.Sign(csr, id, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	leaf, err := pki.ParseCertificate(certPEM)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
		State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}},
	}})
	ctx, cancel := context.WithCancel(ctx)
	s := &stream{ctx: ctx, cancel: cancel, in: make(chan *agentv1.SessionRequest, 16), out: make(chan *agentv1.SessionResponse, 16), err: make(chan error, 1)}
	f.t.Cleanup(cancel)
	go func() { s.err <- f.d.Session(s) }()
	s.in <- &agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: hello}}
	return s
}

// next returns the next message the dispatcher sent on s.
func (s *stream) next(t *testing.T) *agentv1.SessionResponse {
	t.Helper()
	select {
	case m := <-s.out:
		return m
	case err := <-s.err:
		t.Fatalf("session ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no message from the dispatcher in 5s")
	}
	return nil
}

// ended waits for the session to end and returns its error. The handler
// notices a cancelled session on the agent's next message, so ended keeps
// sending heartbeats.
func (s *stream) ended(t *testing.T) error {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s.in <- &agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}}:
		default:
		}
		select {
		case err := <-s.err:
			return err
		case <-s.out: // answered: not ended yet
			time.Sleep(10 * time.Millisecond) // polling with a deadline
		case <-deadline:
			t.Fatal("the session did not end in 5s")
		}
	}
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	controllertest.WaitFor(t, 5*time.Second, what, cond)
}

func TestDispatcher_WelcomesAndDeliversPendingThenNewCommands(t *testing.T) {
	f := newFixture(t, "web-1")
	f.command("web-1", "id-1", "before")
	s := f.connect("web-1", &agentv1.Hello{Name: "web-1", Version: "v1"})
	w := s.next(t).GetWelcome()
	if w.GetController() != "c1" || w.GetHeartbeatIntervalMillis() != 10000 || len(w.GetControllers()) != 1 {
		t.Fatalf("Welcome = %v, want c1, 10s heartbeats, one controller", w)
	}
	if c := s.next(t).GetCommand(); c.GetId() != "id-1" || c.GetOperation().GetNoop().GetPayload() != "before" {
		t.Fatalf("first command = %v, want the pending id-1", c)
	}
	f.command("web-1", "id-2", "after")
	if c := s.next(t).GetCommand(); c.GetId() != "id-2" {
		t.Fatalf("second command = %v, want id-2, recorded after the session started", c)
	}
	s.in <- &agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Result{Result: &agentv1.CommandResult{Id: "id-2", Result: &agentv1.Result{Ok: true}}}}
	waitFor(t, "id-2's result recorded", func() error {
		rec, _, _ := schema.Commands.Get(f.cluster.View(), schema.CommandKey("web-1", "id-2"))
		if rec.GetState() != controllerv1.CommandState_COMMAND_STATE_DONE || !rec.GetResult().GetOk() || rec.GetController() != "c1" {
			return fmt.Errorf("command = %v", rec)
		}
		return nil
	})
}

func TestDispatcher_IgnoresResultsForAnotherAgentsCommand(t *testing.T) {
	f := newFixture(t, "web-1", "web-2")
	f.command("web-2", "id-9", "theirs")
	s := f.connect("web-1", &agentv1.Hello{Name: "web-1"})
	s.next(t) // welcome
	s.in <- &agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Result{Result: &agentv1.CommandResult{Id: "id-9", Result: &agentv1.Result{Ok: true}}}}
	// A heartbeat after the result: once it is answered the result was
	// taken; give the writer a moment to (not) write it.
	s.in <- &agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}}
	if s.next(t).GetHeartbeatAck() == nil {
		t.Fatal("want a heartbeat ack")
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if rec, _, _ := schema.Commands.Get(f.cluster.View(), schema.CommandKey("web-2", "id-9")); rec.GetState() != controllerv1.CommandState_COMMAND_STATE_PENDING {
			t.Fatalf("web-1 answered web-2's command: %v", rec)
		}
		time.Sleep(10 * time.Millisecond) // watching for a write that must not happen
	}
}

func TestDispatcher_HelloMustNameTheCertificate(t *testing.T) {
	f := newFixture(t, "web-1")
	s := f.connect("web-1", &agentv1.Hello{Name: "web-2"})
	select {
	case err := <-s.err:
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("Session = %v, want InvalidArgument", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Session did not refuse the Hello")
	}
}

func TestDispatcher_PresenceFollowsTheSession(t *testing.T) {
	f := newFixture(t, "web-1")
	s := f.connect("web-1", &agentv1.Hello{Name: "web-1", Version: "v7"})
	s.next(t) // welcome
	waitFor(t, "one session", func() error {
		if got := f.d.Sessions(); got != 1 {
			return fmt.Errorf("Sessions() = %d", got)
		}
		return nil
	})
	waitFor(t, "web-1 shown connected", func() error {
		p := f.d.Presence(f.cluster.View())["web-1"]
		if !p.Connected || p.Controller != "c1" || p.Version != "v7" {
			return fmt.Errorf("presence = %+v", p)
		}
		return nil
	})
	close(s.in) // the agent goes away
	if err := <-s.err; !errors.Is(err, io.EOF) {
		t.Errorf("Session = %v, want io.EOF", err)
	}
	waitFor(t, "web-1 shown disconnected", func() error {
		if p := f.d.Presence(f.cluster.View())["web-1"]; p.Connected || p.LastSeenUnixMillis == 0 {
			return fmt.Errorf("presence = %+v", p)
		}
		return nil
	})
}

func TestDispatcher_RecordsChangedFacts(t *testing.T) {
	f := newFixture(t, "web-1")
	s := f.connect("web-1", &agentv1.Hello{Name: "web-1", Facts: &agentv1.Facts{Hostname: "box-1"}})
	s.next(t) // welcome
	waitFor(t, "facts recorded", func() error {
		rec, _, _ := schema.Agents.Get(f.cluster.View(), "web-1")
		if rec.GetFacts().GetHostname() != "box-1" || rec.GetFactsUnixMillis() == 0 {
			return fmt.Errorf("agent = %v", rec)
		}
		return nil
	})
}

func TestDispatcher_EndsSessions(t *testing.T) {
	tests := []struct {
		name string
		end  func(f *fixture)
		code codes.Code
	}{
		{"kicked", func(f *fixture) { f.d.Kick("web-1") }, codes.Unauthenticated},
		{"replaced", func(f *fixture) {
			f.connect("web-1", &agentv1.Hello{Name: "web-1"}).next(f.t)
		}, codes.Aborted},
		{"controller removed", func(f *fixture) {
			f.write(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Nodes.Delete("c1")}})
			waitFor(f.t, "OnRemoved", func() error {
				if !f.removed.Load() {
					return errors.New("not called")
				}
				return nil
			})
		}, codes.Unavailable},
		{"closed", func(f *fixture) { f.d.Close() }, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "web-1")
			s := f.connect("web-1", &agentv1.Hello{Name: "web-1"})
			s.next(t) // welcome
			waitFor(t, "the session registered", func() error {
				if f.d.Sessions() != 1 {
					return errors.New("not yet")
				}
				return nil
			})
			tt.end(f)
			if err := s.ended(t); status.Code(err) != tt.code {
				t.Errorf("Session = %v, want %v", err, tt.code)
			}
		})
	}
}
