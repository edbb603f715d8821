package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// errHeartbeatTimeout ends a session whose controller stopped answering.
var errHeartbeatTimeout = errors.New("agent: controller stopped answering heartbeats")

// session runs one Session stream against addr until it fails or ctx ends.
// established reports whether the controller welcomed the agent.
func (a *Agent) session(ctx context.Context, addr string) (established bool, err error) {
	conn, err := grpc.NewClient(addr, a.dialOptions()...)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// The dial, the Hello and the Welcome together are bounded.
	timer := time.AfterFunc(a.cfg.DialTimeout, func() { cancel(fmt.Errorf("agent: %s did not answer within %s", addr, a.cfg.DialTimeout)) })
	// Fail fast on a refused connection (a dead controller): wait only
	// until the connection is ready or has failed once.
	conn.Connect()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if st == connectivity.TransientFailure {
			timer.Stop()
			_, err := agentv1.NewSessionServiceClient(conn).Session(sctx) // the reason
			if err == nil {
				err = fmt.Errorf("agent: cannot connect to %s", addr)
			}
			return false, sessionErr(sctx, err)
		}
		if !conn.WaitForStateChange(sctx, st) {
			timer.Stop()
			return false, sessionErr(sctx, sctx.Err())
		}
	}
	stream, err := agentv1.NewSessionServiceClient(conn).Session(sctx)
	if err != nil {
		timer.Stop()
		return false, sessionErr(sctx, err)
	}
	hello := &agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: &agentv1.Hello{
		Name: a.cfg.Name, Version: a.cfg.Version, Facts: a.facts(sctx),
	}}}
	if err := stream.Send(hello); err != nil {
		timer.Stop()
		if errors.Is(err, io.EOF) {
			// The server ended the stream (e.g. revoked): Recv has why.
			_, err = stream.Recv()
		}
		return false, sessionErr(sctx, err)
	}
	first, err := stream.Recv()
	timer.Stop()
	if err != nil {
		return false, sessionErr(sctx, err)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return false, errors.New("agent: controller did not welcome the session")
	}
	a.learn(welcome.GetControllers())
	a.mu.Lock()
	a.connected = addr
	a.sessions++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.connected = ""
		a.mu.Unlock()
	}()
	select {
	case a.sessionCh <- struct{}{}:
	default:
	}
	a.log.Info("session established", "controller", welcome.GetController(), "address", addr)

	interval := time.Duration(welcome.GetHeartbeatIntervalMillis()) * time.Millisecond
	if interval <= 0 {
		interval = 5 * time.Second
	}
	var sendMu sync.Mutex // serializes stream.Send
	send := func(m *agentv1.SessionRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	var lastRecv atomic.Int64
	lastRecv.Store(time.Now().UnixNano())

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			if time.Since(time.Unix(0, lastRecv.Load())) > 3*interval {
				cancel(errHeartbeatTimeout)
				return
			}
			if err := send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}}); err != nil {
				cancel(err)
				return
			}
		}
	})
	for {
		m, err := stream.Recv()
		if err != nil {
			return true, sessionErr(sctx, err)
		}
		lastRecv.Store(time.Now().UnixNano())
		switch msg := m.GetMsg().(type) {
		case *agentv1.SessionResponse_HeartbeatAck:
			a.learn(msg.HeartbeatAck.GetControllers())
		case *agentv1.SessionResponse_Command:
			cmd := msg.Command
			// Commands run to completion even if the session ends (the
			// session does not wait for them: reconnecting comes first);
			// the result is journaled and answers the redelivery.
			a.cmds.Go(func() {
				res := a.jr.do(context.WithoutCancel(ctx), cmd.GetId(), func(rctx context.Context) (*agentv1.Result, bool) {
					r, err := a.cfg.Runtime.Do(rctx, cmd.GetOperation())
					if err != nil {
						return &agentv1.Result{Ok: false, Error: err.Error()}, false
					}
					if f := r.GetFacts(); f != nil && f.GetAgentVersion() == "" {
						f.AgentVersion = a.cfg.Version
					}
					return r, true
				})
				if err := send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Result{Result: &agentv1.CommandResult{Id: cmd.GetId(), Result: res}}}); err != nil {
					cancel(err)
				}
			})
		}
	}
}

// sessionErr explains why a session ended, preferring the cancel cause.
func sessionErr(ctx context.Context, err error) error {
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.Unauthenticated && strings.Contains(st.Message(), "revoked") {
			return fmt.Errorf("%w: %s (the agent was removed; join again with a new token and a new --data-dir)", ErrRevoked, st.Message())
		}
		if st.Code() == codes.PermissionDenied {
			return fmt.Errorf("%w: %s", ErrRevoked, st.Message())
		}
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}
