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
	"github.com/kctl-dev/kctl/internal/agent/selfupgrade"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/sealbox"
	"github.com/kctl-dev/kctl/internal/wirelimit"
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
	stream, welcome, err := a.handshake(sctx, cancel, conn, addr)
	if err != nil {
		return false, err
	}
	defer a.markConnected(addr)()
	a.log.Info("session established", "controller", welcome.GetController(), "address", addr)
	if a.cfg.OnConnected != nil {
		a.cfg.OnConnected()
	}

	interval := time.Duration(welcome.GetHeartbeatIntervalMillis()) * time.Millisecond
	if interval <= 0 {
		interval = 5 * time.Second
	}
	ss := &sessionStream{stream: stream, cancel: cancel}
	ss.lastRecv.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	wg.Go(func() { ss.heartbeat(sctx, interval) })
	for {
		m, err := stream.Recv()
		if err != nil {
			return true, sessionErr(sctx, err)
		}
		ss.lastRecv.Store(time.Now().UnixNano())
		switch msg := m.GetMsg().(type) {
		case *agentv1.SessionResponse_HeartbeatAck:
			a.learn(msg.HeartbeatAck.GetControllers())
			a.checkTrust(msg.HeartbeatAck.GetCaTrust())
		case *agentv1.SessionResponse_Command:
			// Commands run to completion even if the session ends (the
			// session does not wait for them: reconnecting comes first);
			// the result is journaled and answers the redelivery.
			a.cmds.Go(func() { a.runCommand(ctx, ss, conn, msg.Command) })
		case *agentv1.SessionResponse_OpenTunnel:
			// A stream lives on this session's connection: it ends with
			// the session (the controller holding it went away).
			a.cmds.Go(func() { a.tunnel(sctx, conn, msg.OpenTunnel.GetId()) })
		}
	}
}

// handshake connects to addr, sends the Hello and waits for the Welcome,
// all within cfg.DialTimeout.
func (a *Agent) handshake(sctx context.Context, cancel context.CancelCauseFunc, conn *grpc.ClientConn, addr string) (agentv1.SessionService_SessionClient, *agentv1.Welcome, error) {
	timer := time.AfterFunc(a.cfg.DialTimeout, func() { cancel(fmt.Errorf("agent: %s did not answer within %s", addr, a.cfg.DialTimeout)) })
	defer timer.Stop()
	if err := waitReady(sctx, conn, addr); err != nil {
		return nil, nil, err
	}
	stream, err := agentv1.NewSessionServiceClient(conn).Session(sctx)
	if err != nil {
		return nil, nil, sessionErr(sctx, err)
	}
	hello := &agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: &agentv1.Hello{
		Name: a.cfg.Name, Version: a.cfg.Version, Facts: a.facts(sctx),
		ProtocolVersion: uint32(protocol.Current()),
	}}}
	if err := stream.Send(hello); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream (e.g. revoked): Recv has why.
			_, err = stream.Recv()
		}
		return nil, nil, sessionErr(sctx, err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, sessionErr(sctx, err)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return nil, nil, errors.New("agent: controller did not welcome the session")
	}
	a.learn(welcome.GetControllers())
	a.checkTrust(welcome.GetCaTrust())
	return stream, welcome, nil
}

// waitReady fails fast on a refused connection (a dead controller): it
// waits only until the connection is ready or has failed once.
func waitReady(sctx context.Context, conn *grpc.ClientConn, addr string) error {
	conn.Connect()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if st == connectivity.TransientFailure {
			_, err := agentv1.NewSessionServiceClient(conn).Session(sctx) // the reason
			if err == nil {
				err = fmt.Errorf("agent: cannot connect to %s", addr)
			}
			return sessionErr(sctx, err)
		}
		if !conn.WaitForStateChange(sctx, st) {
			return sessionErr(sctx, sctx.Err())
		}
	}
	return nil
}

// markConnected records the session to addr and wakes whoever waits for a
// session; the returned func records its end.
func (a *Agent) markConnected(addr string) func() {
	a.mu.Lock()
	a.connected = addr
	a.sessions++
	a.mu.Unlock()
	select {
	case a.sessionCh <- struct{}{}:
	default:
	}
	return func() {
		a.mu.Lock()
		a.connected = ""
		a.mu.Unlock()
	}
}

// sessionStream is an established session's stream, shared by the receive
// loop, the heartbeat and the commands answering on it.
type sessionStream struct {
	stream agentv1.SessionService_SessionClient
	// cancel ends the session with a cause.
	cancel context.CancelCauseFunc
	// sendMu serializes stream.Send.
	sendMu sync.Mutex
	// lastRecv is when the controller last sent anything (unix nanos).
	lastRecv atomic.Int64
}

func (ss *sessionStream) send(m *agentv1.SessionRequest) error {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	return ss.stream.Send(m)
}

// heartbeatDeadline is how long a controller may send nothing before the
// agent ends the session and fails over: two missed acknowledgements and a
// second of slack for a loaded controller (11 s at the default 5 s
// interval). A controller that vanished without closing the connection (a
// SIGSTOP, a partition) is noticed this way; gRPC keepalive would take
// 20+10 s.
func heartbeatDeadline(interval time.Duration) time.Duration { return 2*interval + time.Second }

// heartbeat sends a heartbeat every interval and ends the session when the
// controller has been silent for heartbeatDeadline. It checks four times
// per interval, and a heartbeat whose Send blocks (the connection's flow
// control window full of a stalled stream's output) does not hold up the
// check: the next one is skipped instead.
func (ss *sessionStream) heartbeat(sctx context.Context, interval time.Duration) {
	deadline := heartbeatDeadline(interval)
	t := time.NewTicker(max(interval/4, time.Millisecond))
	defer t.Stop()
	next := time.Now().Add(interval)
	inFlight := make(chan struct{}, 1)
	for {
		select {
		case <-sctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, ss.lastRecv.Load())) > deadline {
			ss.cancel(errHeartbeatTimeout)
			return
		}
		if time.Now().Before(next) {
			continue
		}
		next = time.Now().Add(interval)
		select {
		case inFlight <- struct{}{}:
			go func() {
				defer func() { <-inFlight }()
				if err := ss.send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}}); err != nil {
					ss.cancel(err)
				}
			}()
		default: // the last heartbeat is still being sent
		}
	}
}

// runCommand runs cmd once per id (the journal answers a redelivery) and
// sends its result on ss. An AgentUpgrade is the agent's own: it downloads
// the binary over conn and, once the result is sent, restarts on it.
func (a *Agent) runCommand(ctx context.Context, ss *sessionStream, conn *grpc.ClientConn, cmd *agentv1.Command) {
	up := cmd.GetOperation().GetAgentUpgrade()
	res := a.jr.do(context.WithoutCancel(ctx), cmd.GetId(), func(rctx context.Context) (*agentv1.Result, bool) {
		if up != nil {
			return a.upgrade(rctx, conn, up)
		}
		op := cmd.GetOperation()
		// Secrets arrive sealed to this agent: opened here, in memory, for
		// the runtime only.
		if err := sealbox.OpenOperation(op, a.cfg.Name, a.enc); err != nil {
			return &agentv1.Result{Ok: false, Error: err.Error()}, false
		}
		r, err := a.cfg.Runtime.Do(rctx, op)
		if err != nil {
			return &agentv1.Result{Ok: false, Error: err.Error()}, false
		}
		if f := r.GetFacts(); f != nil && f.GetAgentVersion() == "" {
			f.AgentVersion = a.cfg.Version
		}
		return r, true
	})
	if err := ss.send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Result{Result: &agentv1.CommandResult{Id: cmd.GetId(), Result: wirelimit.FitResult(res)}}}); err != nil {
		ss.cancel(err)
	}
	if up != nil && res.GetOk() && up.GetSha256() != selfupgrade.RunningDigest() {
		a.restartOnce.Do(func() { close(a.restart) })
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
