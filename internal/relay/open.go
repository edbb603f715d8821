package relay

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/wirelimit"
)

// upstream is the agent's side of a stream: a local tunnel or a relay
// through the controller holding the agent's session.
type upstream interface {
	Send(*streamv1.ExecInput) error
	Recv() (*streamv1.Output, error)
	// Close ends the stream at once (a blocked Recv returns); it is
	// idempotent.
	Close()
}

// tunnel is an agent's Tunnel stream handed to the stream that asked for
// it. The Tunnel handler returns once done is closed.
type tunnel struct {
	stream streamv1.TunnelService_TunnelServer
	done   chan struct{}
	once   sync.Once
}

// Close lets the Tunnel handler return, which ends the agent's stream.
func (t *tunnel) Close() { t.once.Do(func() { close(t.done) }) }

func (t *tunnel) Send(in *streamv1.ExecInput) error {
	return t.stream.Send(&streamv1.TunnelDown{Msg: &streamv1.TunnelDown_Input{Input: in}})
}

func (t *tunnel) Recv() (*streamv1.Output, error) {
	m, err := t.stream.Recv()
	if err != nil {
		return nil, err
	}
	if m.GetOutput() == nil {
		return nil, status.Error(codes.Internal, "relay: the agent sent something other than output")
	}
	return m.GetOutput(), nil
}

// relayed is a stream relayed through another controller.
type relayed struct {
	stream streamv1.RelayService_RelayClient
}

func (r relayed) Send(in *streamv1.ExecInput) error {
	return r.stream.Send(&streamv1.RelayInput{Msg: &streamv1.RelayInput_Input{Input: in}})
}

func (r relayed) Recv() (*streamv1.Output, error) { return r.stream.Recv() }

// Close does nothing: the relayed stream ends with its context.
func (r relayed) Close() {}

// agentOf names the agent an open is for.
func agentOf(o *streamv1.Open) string {
	if l := o.GetLogs(); l != nil {
		return l.GetAgent()
	}
	return o.GetExec().GetAgent()
}

// open opens the stream o at its agent: through this controller's session
// when it holds the agent's, else relayed through the controller that does.
// ctx bounds the stream; Close releases it.
func (s *Server) open(ctx context.Context, o *streamv1.Open) (upstream, error) {
	agent := agentOf(o)
	up, err := s.openLocal(ctx, agent, o)
	if !errors.Is(err, ErrNotHeld) {
		return up, err
	}
	holder := s.cl.Holder(agent)
	if holder == "" || holder == s.cfg.Name {
		return nil, status.Errorf(codes.Unavailable, "relay: agent %s is not connected to any controller", agent)
	}
	cc, err := s.cl.Peer(holder)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "relay: controller %s, which holds agent %s, is unreachable: %v", holder, agent, err)
	}
	st, err := streamv1.NewRelayServiceClient(cc).Relay(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&streamv1.RelayInput{Msg: &streamv1.RelayInput_Open{Open: o}}); err != nil {
		return nil, err
	}
	return relayed{st}, nil
}

// openLocal asks the agent's session here for a Tunnel and waits for it.
// It returns ErrNotHeld when this controller holds no session of agent.
func (s *Server) openLocal(ctx context.Context, agent string, o *streamv1.Open) (upstream, error) {
	id := newID()
	w := &waiter{agent: agent, ch: make(chan *tunnel, 1)}
	s.mu.Lock()
	s.waiting[id] = w
	s.mu.Unlock()
	unregister := func() *tunnel {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.waiting, id)
		select {
		case t := <-w.ch:
			return t
		default:
			return nil
		}
	}
	if err := s.cl.OpenTunnel(agent, id); err != nil {
		unregister()
		return nil, err
	}
	var t *tunnel
	select {
	case t = <-w.ch:
		unregister()
	case <-ctx.Done():
		err := ctx.Err()
		if t := unregister(); t != nil {
			t.Close()
		}
		return nil, status.FromContextError(err).Err()
	case <-time.After(s.cfg.OpenTimeout):
		if t := unregister(); t != nil {
			t.Close()
		}
		return nil, status.Errorf(codes.Unavailable, "relay: agent %s did not open its tunnel within %s", agent, s.cfg.OpenTimeout)
	}
	if err := t.stream.Send(&streamv1.TunnelDown{Msg: &streamv1.TunnelDown_Open{Open: o}}); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// take hands an agent's Tunnel to the stream waiting under id.
func (s *Server) take(id, agent string, t *tunnel) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiting[id]
	if w == nil || w.agent != agent {
		return status.Errorf(codes.NotFound, "relay: no stream waits for tunnel %s (the operator went away)", id)
	}
	delete(s.waiting, id)
	w.ch <- t // room for one; each id is taken once
	return nil
}

// tunnelAPI serves TunnelService to agents.
type tunnelAPI struct {
	streamv1.UnimplementedTunnelServiceServer
	s *Server
}

var _ streamv1.TunnelServiceServer = tunnelAPI{}

// Tunnel pairs an agent's stream with the operator stream waiting for it
// and lasts until that stream ends. Errors: InvalidArgument (no hello),
// NotFound (nothing waits under the id).
func (a tunnelAPI) Tunnel(stream streamv1.TunnelService_TunnelServer) error {
	id, err := pki.RemoteIdentity(stream.Context())
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "relay: a tunnel must start with a hello")
	}
	t := &tunnel{stream: stream, done: make(chan struct{})}
	if err := a.s.take(hello.GetId(), id.Name, t); err != nil {
		return err
	}
	select {
	case <-t.done:
		return nil
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
}

// relayAPI serves RelayService to controllers.
type relayAPI struct {
	streamv1.UnimplementedRelayServiceServer
	s *Server
}

var _ streamv1.RelayServiceServer = relayAPI{}

// Relay opens a stream at an agent held here for another controller.
// Errors: InvalidArgument (no open first), Unavailable (not held here).
func (a relayAPI) Relay(stream streamv1.RelayService_RelayServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	o := first.GetOpen()
	if o == nil {
		return status.Error(codes.InvalidArgument, "relay: a relay must start with an open")
	}
	up, err := a.s.openLocal(stream.Context(), agentOf(o), o)
	if errors.Is(err, ErrNotHeld) {
		return status.Errorf(codes.Unavailable, "relay: agent %s moved away from controller %s; retry", agentOf(o), a.s.cfg.Name)
	}
	if err != nil {
		return err
	}
	defer up.Close()
	recv := func() (*streamv1.ExecInput, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if m.GetInput() == nil {
			return nil, status.Error(codes.InvalidArgument, "relay: a second open")
		}
		return m.GetInput(), nil
	}
	_, err = pump(stream.Context(), up, recv, stream.Send)
	return err
}

// pump copies the operator's inputs (recv; nil for logs) up in a goroutine
// and the outputs down to send, one message at a time, until the upstream
// ends or sends an Exit (returned) or a Failure (returned as its status).
// A goroutine blocked in recv returns when the RPC ends.
func pump(ctx context.Context, up upstream, recv func() (*streamv1.ExecInput, error), send func(*streamv1.Output) error) (*streamv1.Exit, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The upstream's Recv does not watch ctx (a tunnel belongs to another
	// RPC): end it when ctx ends, so the agent learns at once.
	defer context.AfterFunc(ctx, up.Close)()
	// bad is an input refused by checkInput: it ends the stream.
	bad := make(chan error, 1)
	if recv != nil {
		go func() {
			for {
				in, err := recv()
				if err != nil {
					return
				}
				if err := checkInput(in); err != nil {
					bad <- err
					cancel()
					return
				}
				if err := up.Send(in); err != nil {
					return
				}
			}
		}()
	}
	for {
		out, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			select {
			case err := <-bad:
				return nil, err
			default:
			}
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			return nil, err
		}
		if f := out.GetFailure(); f != nil {
			return nil, status.Error(codes.Code(f.GetCode()), f.GetMessage())
		}
		if err := send(out); err != nil {
			return nil, err
		}
		if e := out.GetExit(); e != nil {
			return e, nil
		}
	}
}

// checkInput refuses an operator's input over its limits
// (wirelimit.ValidateExecInput: e.g. a stdin chunk over
// MaxStdinChunkBytes) or a second start.
func checkInput(in *streamv1.ExecInput) error {
	if in.GetStart() != nil {
		return status.Error(codes.InvalidArgument, "relay: an exec starts once")
	}
	if err := wirelimit.ValidateExecInput(in); err != nil {
		return status.Error(codes.InvalidArgument, "relay: "+err.Error())
	}
	return nil
}

// cut explains an upstream that broke mid-stream.
func cut(agent string, err error) error {
	st := status.Convert(err)
	if st.Code() == codes.Unavailable || st.Code() == codes.Canceled {
		return status.Errorf(codes.Unavailable, "relay: the stream to agent %s was cut: %s", agent, st.Message())
	}
	return err
}
