package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/grpcbuf"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/rpcerr"
	"github.com/kctl-dev/kctl/internal/schema"
)

var (
	// errConflict is returned by applyOK when a precondition failed.
	errConflict = rpcerr.New(codes.Aborted, "controller: concurrent update")
	// errNotFound is returned for an unknown command.
	errNotFound = rpcerr.New(codes.NotFound, "controller: not found")
)

// apply applies cmd through the leader: locally if this node leads, else
// forwarded to the leader over InternalService.Apply (so a client never has
// to find the leader). It retries through elections until ctx ends; the
// command's request_id (set if empty) makes retries idempotent: a retry of
// a command that committed returns the first result. On return the local
// state includes the command.
func (c *Controller) apply(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	if cmd.GetRequestId() == "" {
		cmd.RequestId = newID()
	}
	enrichAudit(ctx, cmd)
	res, err := c.applyRepeatable(ctx, cmd)
	if err == nil && res.GetApplied() {
		noteAudited(ctx, cmd)
	}
	return res, err
}

// applyRepeatable is apply for frequent writes that are harmless to apply
// twice (presence, results): it adds no request_id, which the store would
// remember for a day.
func (c *Controller) applyRepeatable(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	backoff := 10 * time.Millisecond
	for {
		res, err := c.store.Apply(ctx, cmd)
		if err == nil {
			return res, nil
		}
		var nl *raftstore.NotLeaderError
		switch {
		case errors.As(err, &nl) && nl.LeaderID != "" && nl.LeaderID != c.cfg.Name:
			res, ferr := c.peers.apply(ctx, nl.LeaderID, cmd)
			if ferr == nil {
				if err := c.store.WaitForIndex(ctx, res.GetIndex()); err != nil {
					return nil, fmt.Errorf("controller: wait for replication: %w", err)
				}
				return res, nil
			}
			if status.Code(ferr) != codes.Unavailable {
				return nil, ferr
			}
			err = ferr
		case errors.Is(err, raftstore.ErrNotLeader), errors.Is(err, raftstore.ErrLeadershipLost):
		default:
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, status.Errorf(codes.Unavailable, "controller: no leader accepted the write in time (%v); retry", err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 300*time.Millisecond)
	}
}

// applyOK applies cmd and returns errConflict if a precondition failed.
func (c *Controller) applyOK(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	res, err := c.apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if !res.GetApplied() {
		return res, fmt.Errorf("%w: %s; retry", errConflict, res.GetConflict())
	}
	return res, nil
}

// update runs a read-modify-write: build reads the local state and returns
// the command (with version preconditions); on a conflict (a concurrent
// writer won) it is retried, with jitter, after a linearizable read, until
// ctx ends. Many agents joining with one multi-use token contend here.
func (c *Controller) update(ctx context.Context, build func(v *raftstore.Snapshot) (*raftcmdv1.Command, error)) error {
	for attempt := 0; ; attempt++ {
		cmd, err := build(c.store.View())
		if err != nil {
			return err
		}
		if cmd == nil {
			return nil
		}
		_, err = c.applyOK(ctx, cmd)
		if !errors.Is(err, errConflict) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(rand.N(time.Duration(min(attempt+1, 10)) * time.Millisecond)):
		}
		if err := c.linearize(ctx); err != nil {
			return err
		}
	}
}

// linearize makes the next local read linearizable: on the leader by
// ConsistentRead, on a follower by asking the leader for its applied index
// (after it verified its leadership) and waiting until it is applied here.
func (c *Controller) linearize(ctx context.Context) error {
	backoff := 10 * time.Millisecond
	for {
		err := c.store.ConsistentRead(ctx)
		if err == nil {
			return nil
		}
		var nl *raftstore.NotLeaderError
		if errors.As(err, &nl) && nl.LeaderID != "" && nl.LeaderID != c.cfg.Name {
			idx, ferr := c.peers.readIndex(ctx, nl.LeaderID)
			if ferr == nil {
				return c.store.WaitForIndex(ctx, idx)
			}
			err = ferr
		} else if !errors.Is(err, raftstore.ErrNotLeader) {
			return err
		}
		select {
		case <-ctx.Done():
			return status.Errorf(codes.Unavailable, "controller: no leader confirmed the read in time (%v); retry", err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 300*time.Millisecond)
	}
}

// peerPool holds client connections to the other controllers.
type peerPool struct {
	c *Controller
	// mu guards conns.
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerPool(c *Controller) *peerPool {
	return &peerPool{c: c, conns: map[string]*grpc.ClientConn{}}
}

// conn returns a connection to the controller named name.
func (p *peerPool) conn(name string) (*grpc.ClientConn, error) {
	rec, _, ok := schema.Nodes.Get(p.c.store.View(), name)
	if !ok || rec.GetApiAddress() == "" {
		return nil, status.Errorf(codes.Unavailable, "controller: leader %s has no known API address yet", name)
	}
	return p.connAddr(rec.GetApiAddress())
}

func (p *peerPool) connAddr(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(p.c.creds.ClientTLS(pki.RoleController))),
		grpcbuf.DialOption(),
		grpc.WithReadBufferSize(grpcbuf.ReadBuffer), grpc.WithWriteBufferSize(grpcbuf.WriteBuffer), grpc.WithSharedWriteBuffer(true),
		// A relay notices a dead holder in ~13s (gRPC's minimum ping
		// interval for clients is 10s, the server's MinTime).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: pingTimeout}))
	if err != nil {
		return nil, err
	}
	p.conns[addr] = cc
	return cc, nil
}

func (p *peerPool) apply(ctx context.Context, leader string, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	cc, err := p.conn(leader)
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	// The caller's identity travels as a field for the leader's log, not as
	// a forwarded identity: Apply is for controllers only, whoever asked.
	resp, err := controllerv1.NewInternalServiceClient(cc).Apply(ctx, &controllerv1.ApplyRequest{Command: b, Caller: caller(ctx)})
	if err != nil {
		return nil, err
	}
	var res raftcmdv1.Result
	if err := proto.Unmarshal(resp.GetResult(), &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (p *peerPool) readIndex(ctx context.Context, leader string) (uint64, error) {
	cc, err := p.conn(leader)
	if err != nil {
		return 0, err
	}
	resp, err := controllerv1.NewInternalServiceClient(cc).ReadIndex(ctx, &controllerv1.ReadIndexRequest{})
	if err != nil {
		return 0, err
	}
	return resp.GetIndex(), nil
}

func (p *peerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cc := range p.conns {
		cc.Close()
	}
	p.conns = map[string]*grpc.ClientConn{}
}

// internalAPI serves InternalService: controllers only (policy.go).
type internalAPI struct {
	controllerv1.UnimplementedInternalServiceServer
	c *Controller
}

// Apply applies a forwarded command on the leader. Errors: Unavailable (not
// the leader, or leadership lost: the caller retries), InvalidArgument.
func (s *internalAPI) Apply(ctx context.Context, req *controllerv1.ApplyRequest) (*controllerv1.ApplyResponse, error) {
	var cmd raftcmdv1.Command
	if err := proto.Unmarshal(req.GetCommand(), &cmd); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "controller: undecodable command: %v", err)
	}
	res, err := s.c.store.Apply(ctx, &cmd)
	if err != nil {
		// Anything but a command that can never apply is worth a retry.
		if rpcerr.Code(err) == codes.InvalidArgument {
			return nil, rpcerr.Status(err)
		}
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	b, err := proto.Marshal(res)
	if err != nil {
		return nil, err
	}
	return &controllerv1.ApplyResponse{Index: res.GetIndex(), Result: b}, nil
}

// ReadIndex confirms leadership and returns the applied index. Errors:
// Unavailable (not the leader).
func (s *internalAPI) ReadIndex(ctx context.Context, _ *controllerv1.ReadIndexRequest) (*controllerv1.ReadIndexResponse, error) {
	if err := s.c.store.ConsistentRead(ctx); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &controllerv1.ReadIndexResponse{Index: s.c.store.AppliedIndex()}, nil
}
