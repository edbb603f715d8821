package controller

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/netlimit"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/schema"
)

// Limits on what the network can make a controller hold or do. The README's
// "Limits" section lists them; the agent session's fields are bounded in
// internal/dispatcher/limits.go, operator streams in internal/relay.
const (
	// maxRecvMsgBytes is the gRPC server's receive limit: the largest
	// per-method limit below.
	maxRecvMsgBytes = 4 << 20
	// defaultMsgBytes bounds a message of any method not in msgLimits.
	defaultMsgBytes = 64 << 10
	// handshakeTimeout bounds a new connection's TLS handshake and HTTP/2
	// preface.
	handshakeTimeout = 5 * time.Second
	// maxStreamsPerConn bounds the concurrent streams of one connection
	// (more wait for a slot): an anonymous connection cannot hold a
	// million health watches.
	maxStreamsPerConn = 1024
	// maxConnIdle closes a connection that carried no stream for so long.
	maxConnIdle = 5 * time.Minute
	// joinRate/joinBurst bound the Join calls that reach the store (the
	// others are answered from memory), in all; joinSourceRate and
	// joinSourceBurst per source address.
	joinRate, joinBurst             = 20, 100
	joinSourceRate, joinSourceBurst = 2, 20
	// badTokenTTL is how long a refused token is refused from memory;
	// maxBadTokens bounds that memory.
	badTokenTTL  = 10 * time.Minute
	maxBadTokens = 10000
	// staleAfter: a follower that has not heard from the leader for so
	// long confirms it is current (a read index) before serving an
	// operator, and refuses when it cannot.
	staleAfter = 2 * time.Second
	// barrierTimeout bounds how long a removal waits for the other
	// controllers to apply it.
	barrierTimeout = 3 * time.Second
	// maxRaftConns caps the Raft listener's connections (a few per peer),
	// maxRaftConnsPerSource those per source address still in their
	// handshake (the transport marks a peer authenticated once its
	// certificate checks out).
	maxRaftConns, maxRaftConnsPerSource = 256, 32
)

// msgLimits bounds the size of each message received per method (the
// request of a unary call, every message of a stream); defaultMsgBytes for
// the rest. Deploy requests are capped by kctl at 3 MiB (request.go).
var msgLimits = map[string]int{
	"/kctl.controller.v1.InternalService/Apply":         maxRecvMsgBytes,
	"/kctl.controller.v1.ControllerService/SendCommand": maxRecvMsgBytes,
	"/kctl.deploy.v1.DeployService/Submit":              maxRecvMsgBytes,
	"/kctl.ops.v1.LifecycleService/App":                 maxRecvMsgBytes,
	"/kctl.ops.v1.LifecycleService/Proxy":               maxRecvMsgBytes,
	"/kctl.ops.v1.LifecycleService/Accessory":           maxRecvMsgBytes,
	"/kctl.ops.v1.LifecycleService/Remove":              maxRecvMsgBytes,
	// A Hello (facts ≤ 256 KiB) or a result (facts, detail ≤ 64 KiB).
	"/kctl.agent.v1.SessionService/Session": 1 << 20,
	// Stream data: stdin, output chunks, relayed frames.
	"/kctl.stream.v1.StreamService/Logs":       1 << 20,
	"/kctl.stream.v1.StreamService/Exec":       1 << 20,
	"/kctl.stream.v1.StreamService/ServerExec": 1 << 20,
	"/kctl.stream.v1.RelayService/Relay":       1 << 20,
	"/kctl.stream.v1.TunnelService/Tunnel":     1 << 20,
	// Blob chunks (blobChunk) and their framing.
	"/kctl.fleet.v1.BlobService/Put": blobChunk + 1<<10,
}

func msgLimit(method string) int {
	if n, ok := msgLimits[method]; ok {
		return n
	}
	return defaultMsgBytes
}

// checkSize refuses a message over its method's limit.
func checkSize(method string, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if n, max := proto.Size(pm), msgLimit(method); n > max {
		return status.Errorf(codes.InvalidArgument, "controller: a %s message is %d bytes, over the limit of %d", method, n, max)
	}
	return nil
}

// limitUnary bounds the request's size and refuses an operator while this
// controller is not current (see current).
func (c *Controller) limitUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := checkSize(info.FullMethod, req); err != nil {
		return nil, err
	}
	if err := c.operatorCurrent(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// limitStream is limitUnary for streams: every message received is bounded.
func (c *Controller) limitStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := c.operatorCurrent(ss.Context()); err != nil {
		return err
	}
	return handler(srv, &limitedStream{ServerStream: ss, method: info.FullMethod})
}

type limitedStream struct {
	grpc.ServerStream
	method string
}

func (s *limitedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkSize(s.method, m)
}

// operatorCurrent refuses an operator's call on a controller that is not current:
// a follower that has not heard from the leader within staleAfter confirms
// with a read index (and so catches up) before it answers, and refuses
// (Unavailable: kctl tries another controller) when it cannot. A
// revocation applied by the others therefore holds here too.
func (c *Controller) operatorCurrent(ctx context.Context) error {
	id, err := pki.RemoteIdentity(ctx)
	if err != nil || id.Role != pki.RoleOperator {
		return nil
	}
	last := c.store.LastContact()
	if time.Since(last) <= staleAfter {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, barrierTimeout)
	defer cancel()
	if err := c.linearize(lctx); err != nil {
		return status.Errorf(codes.Unavailable, "controller: %s is not in touch with the cluster's leader (last heard %s); try another controller", c.cfg.Name, since(last))
	}
	return nil
}

func since(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Millisecond).String() + " ago"
}

// barrier waits until every other reachable controller has applied what
// this one has (a removal just written), for up to barrierTimeout. A
// controller that does not confirm is one the leader cannot reach: it
// stops hearing from the leader and refuses operators until it catches up
// (operatorCurrent).
func (c *Controller) barrier(ctx context.Context) {
	idx := c.store.AppliedIndex()
	ctx, cancel := context.WithTimeout(ctx, barrierTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range schema.Nodes.Values(c.store.View(), "") {
		if n.GetName() == c.cfg.Name || n.GetApiAddress() == "" {
			continue
		}
		wg.Go(func() {
			cc, err := c.peers.connAddr(n.GetApiAddress())
			if err == nil {
				_, err = controllerv1.NewInternalServiceClient(cc).WaitApplied(ctx, &controllerv1.WaitAppliedRequest{Index: idx}, grpc.WaitForReady(true))
			}
			if err != nil {
				c.log.Warn("a controller did not confirm a revocation in time; it refuses operators until it catches up", "peer", n.GetName(), "index", idx, "err", err)
			}
		})
	}
	wg.Wait()
}

// WaitApplied returns once this controller applied the index. Errors:
// DeadlineExceeded.
func (s *internalAPI) WaitApplied(ctx context.Context, req *controllerv1.WaitAppliedRequest) (*controllerv1.WaitAppliedResponse, error) {
	if err := s.c.store.WaitForIndex(ctx, req.GetIndex()); err != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "%v", err)
	}
	return &controllerv1.WaitAppliedResponse{Index: s.c.store.AppliedIndex()}, nil
}

// joinGate answers what it can of unauthenticated Join calls from memory:
// a token refused recently is refused again without a read on the leader,
// and the rest are rate-limited, per source address and in all.
type joinGate struct {
	all *netlimit.Bucket
	// mu guards the fields that follow.
	mu     sync.Mutex
	perSrc map[string]*netlimit.Bucket
	bad    map[string]badToken
}

type badToken struct {
	until time.Time
	err   error
}

func newJoinGate() *joinGate {
	return &joinGate{all: netlimit.NewBucket(joinRate, joinBurst), perSrc: map[string]*netlimit.Bucket{}, bad: map[string]badToken{}}
}

// refused returns the refusal remembered for the token id, if any.
func (g *joinGate) refused(tid string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.bad[tid]
	if !ok {
		return nil
	}
	if time.Now().After(b.until) {
		delete(g.bad, tid)
		return nil
	}
	return b.err
}

// tokenUsable refuses an expired or used-up token (both final). A used-up
// token stays usable for a retry of a join it already admitted: the same
// name and key (joinKey, name: the joiner's; Join's retry).
func (c *Controller) tokenUsable(rec *controllerv1.TokenRecord, joinKey func(string) string, name string) error {
	if c.cfg.Clock.Now().Unix() >= rec.GetExpiresUnix() {
		return status.Errorf(codes.Unauthenticated, "controller: token expired at %s: ask an admin for a new one (kctl token create)", time.Unix(rec.GetExpiresUnix(), 0).UTC().Format(time.RFC3339))
	}
	if roleOf(rec.GetRole()) == pki.RoleOperator {
		name = rec.GetName()
	}
	if rec.GetUsesLeft() == 0 && !slices.Contains(rec.GetJoined(), joinKey(name)) {
		return status.Error(codes.Unauthenticated, "controller: token already used up: ask an admin for a new one (kctl token create --uses N)")
	}
	return nil
}

// errUnknownToken refuses a token the cluster does not hold.
var errUnknownToken = status.Error(codes.Unauthenticated, "controller: unknown or revoked token: ask an admin for a new one (kctl token create)")

// remember keeps the refusal of an unknown token id for badTokenTTL: a
// token is never created with a given secret later (secrets are random).
// An expired or used-up token is refused by the store, at the bounded rate.
func (g *joinGate) remember(tid string, err error) {
	if !errors.Is(err, errUnknownToken) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.bad) >= maxBadTokens {
		g.bad = map[string]badToken{}
	}
	g.bad[tid] = badToken{until: time.Now().Add(badTokenTTL), err: err}
}

// admit takes a token from the caller's source bucket and the global one.
func (g *joinGate) admit(ctx context.Context) error {
	src := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			src = host
		}
	}
	g.mu.Lock()
	b := g.perSrc[src]
	if b == nil {
		if len(g.perSrc) >= maxBadTokens {
			g.perSrc = map[string]*netlimit.Bucket{}
		}
		b = netlimit.NewBucket(joinSourceRate, joinSourceBurst)
		g.perSrc[src] = b
	}
	g.mu.Unlock()
	if !b.Allow() || !g.all.Allow() {
		return status.Error(codes.ResourceExhausted, "controller: too many join attempts; retry in a few seconds")
	}
	return nil
}

// apiListener wraps the API listener with the connection caps.
func (c *Controller) apiListener() *netlimit.Listener {
	return netlimit.Listen(c.cfg.APIListener, netlimit.Config{
		MaxConns: c.cfg.MaxConns, MaxUnauthenticated: c.cfg.MaxUnauthenticatedConns, MaxPerSource: c.cfg.MaxConnsPerSource,
	})
}

// defaultMaxConns is the open-file limit less 1024 (Raft, its log and
// snapshots, peers), at least 256 and at most netlimit.DefaultMaxConns.
func defaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 1024+256 {
		return 256
	}
	return int(min(netlimit.DefaultMaxConns, lim.Cur-1024))
}

// liveness tracks which other controllers answered a probe lately, for
// presence (dispatcher.Cluster.Alive): in memory, nothing goes to Raft.
type liveness struct {
	// mu guards last.
	mu   sync.Mutex
	last map[string]time.Time
}

// alive reports whether name answered within the dispatcher's grace; a
// controller not probed yet counts as alive from its first mention.
func (c *Controller) alive(name string) bool {
	if name == c.cfg.Name {
		return true
	}
	c.live.mu.Lock()
	defer c.live.mu.Unlock()
	t, ok := c.live.last[name]
	if !ok {
		t = time.Now()
		c.live.last[name] = t
	}
	return time.Since(t) <= c.disp.Grace()
}

// livenessLoop probes every other controller each PresenceInterval.
func (c *Controller) livenessLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.PresenceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, n := range schema.Nodes.Values(c.store.View(), "") {
			if n.GetName() == c.cfg.Name || n.GetApiAddress() == "" {
				continue
			}
			wg.Go(func() {
				if c.probe(ctx, n.GetApiAddress()) {
					c.live.mu.Lock()
					c.live.last[n.GetName()] = time.Now()
					c.live.mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
}

// probe reports whether the controller at addr answers its health check
// as serving, within a second.
func (c *Controller) probe(ctx context.Context, addr string) bool {
	cc, err := c.peers.connAddr(addr)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
}
