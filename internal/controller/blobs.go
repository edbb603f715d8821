package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	fleetv1 "github.com/kctl-dev/kctl/gen/kctl/fleet/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/blobstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// blobChunk is the size of the chunks blobs travel in (PutRequest,
// GetResponse); a received chunk may not exceed it.
const blobChunk = blobstore.Chunk

// DefaultBlobBytes bounds a controller's blob store (Config.BlobBytes).
const DefaultBlobBytes = 4 << 30

// blobAPI serves BlobService: blobs on this controller's disk, copied to
// every other controller on upload and fetched from them when missing.
type blobAPI struct {
	fleetv1.UnimplementedBlobServiceServer
	c *Controller
}

// Put stores an uploaded blob, then (unless it is itself a copy) copies it
// to every other controller it can reach. Audited.
func (b *blobAPI) Put(stream fleetv1.BlobService_PutServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "controller: a blob upload starts with its header")
	}
	if !blobstore.ValidDigest(h.GetSha256()) {
		return status.Errorf(codes.InvalidArgument, "controller: %q is not a SHA-256 digest (64 lowercase hex characters)", h.GetSha256())
	}
	err = b.c.blobs.Put(h.GetSha256(), h.GetSize(), blobstore.ChunkReader(func() ([]byte, error) {
		m, err := stream.Recv()
		if err == nil && len(m.GetChunk()) > blobChunk {
			err = status.Errorf(codes.InvalidArgument, "controller: blob chunk of %d bytes, at most %d", len(m.GetChunk()), blobChunk)
		}
		return m.GetChunk(), err
	}))
	if err != nil {
		return blobStatus(err)
	}
	resp := &fleetv1.PutResponse{Controllers: 1, Of: 1}
	if !h.GetCopy() {
		resp.Controllers, resp.Of = b.c.copyBlob(stream.Context(), h.GetSha256())
		b.c.auditAction(stream.Context(), "blob upload", "ok", fmt.Sprintf("sha256:%s, %d bytes, on %d of %d controllers", h.GetSha256(), h.GetSize(), resp.Controllers, resp.Of))
	}
	return stream.SendAndClose(resp)
}

// Get streams a blob from the requested offset, fetching it from another
// controller first if this one lacks it.
func (b *blobAPI) Get(req *fleetv1.GetRequest, stream fleetv1.BlobService_GetServer) error {
	d := req.GetSha256()
	if _, ok := b.c.blobs.Has(d); !ok {
		if err := b.c.fetchBlob(stream.Context(), d); err != nil {
			return blobStatus(err)
		}
	}
	f, size, err := b.c.blobs.Open(d)
	if err != nil {
		return blobStatus(err)
	}
	defer f.Close()
	off := req.GetOffset()
	if off < 0 || off > size {
		return status.Errorf(codes.InvalidArgument, "controller: offset %d outside the blob's %d bytes", off, size)
	}
	buf := make([]byte, blobChunk)
	first := true
	for {
		n, err := f.ReadAt(buf, off)
		if n > 0 || first {
			if serr := stream.Send(&fleetv1.GetResponse{Chunk: buf[:n], Size: size}); serr != nil {
				return serr
			}
			first = false
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "controller: reading blob: %v", err)
		}
	}
}

func blobStatus(err error) error {
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, blobstore.ErrDigest), errors.Is(err, blobstore.ErrTooLarge):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

// copyBlob copies a blob this controller holds to every other controller
// and returns how many hold it.
func (c *Controller) copyBlob(ctx context.Context, digest string) (have, of int32) {
	have, of = 1, 1
	for _, n := range schema.Nodes.Values(c.store.View(), "") {
		if n.GetName() == c.cfg.Name {
			continue
		}
		of++
		if err := c.copyBlobTo(ctx, n.GetName(), digest); err != nil {
			c.log.Warn("copying a blob to a controller failed; it will fetch it when asked", "to", n.GetName(), "sha256", digest, "err", err)
			continue
		}
		have++
	}
	return have, of
}

func (c *Controller) copyBlobTo(ctx context.Context, node, digest string) error {
	cc, err := c.peers.conn(node)
	if err != nil {
		return err
	}
	f, size, err := c.blobs.Open(digest)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	_, err = blobstore.Upload(ctx, fleetv1.NewBlobServiceClient(cc), digest, size, true, f)
	return err
}

// fetchBlob copies a blob this controller lacks from the first other
// controller that has it.
func (c *Controller) fetchBlob(ctx context.Context, digest string) error {
	if !blobstore.ValidDigest(digest) {
		return fmt.Errorf("%w: %q", blobstore.ErrNotFound, digest)
	}
	var last error = fmt.Errorf("%w: %s (upload it with kctl)", blobstore.ErrNotFound, digest)
	for _, n := range schema.Nodes.Values(c.store.View(), "") {
		if n.GetName() == c.cfg.Name {
			continue
		}
		cc, err := c.peers.conn(n.GetName())
		if err != nil {
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		st, err := fleetv1.NewBlobServiceClient(cc).Get(gctx, &fleetv1.GetRequest{Sha256: digest})
		if err != nil {
			cancel()
			continue
		}
		var first *fleetv1.GetResponse
		if first, err = st.Recv(); err == nil {
			pending := first.GetChunk()
			err = c.blobs.Put(digest, first.GetSize(), blobstore.ChunkReader(func() ([]byte, error) {
				if b := pending; b != nil {
					pending = nil
					return b, nil
				}
				m, err := st.Recv()
				return m.GetChunk(), err
			}))
		}
		cancel()
		if err == nil {
			return nil
		}
		if status.Code(err) != codes.NotFound {
			last = err
		}
	}
	return last
}

// auditAction appends an audit entry for an action by the caller.
func (c *Controller) auditAction(ctx context.Context, action, result, detail string) {
	e := &deployv1.AuditEntry{UnixMillis: c.cfg.Clock.Now().UnixMilli(), Operator: caller(ctx), Action: action, Result: result, Detail: detail}
	if _, err := c.apply(context.WithoutCancel(ctx), &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Audit.Append(e)}}); err != nil {
		c.log.Warn("recording an action in the audit failed", "err", err, "action", action)
	}
}

// upgradeAPI serves UpgradeService.
type upgradeAPI struct {
	fleetv1.UnimplementedUpgradeServiceServer
	c *Controller
}

// UpgradeAgent sends the agent an AgentUpgrade command and waits for its
// answer: the new binary's version. Audited with its result.
func (u *upgradeAPI) UpgradeAgent(ctx context.Context, req *fleetv1.UpgradeAgentRequest) (*fleetv1.UpgradeAgentResponse, error) {
	d := req.GetSha256()
	if !blobstore.ValidDigest(d) {
		return nil, status.Errorf(codes.InvalidArgument, "controller: %q is not a SHA-256 digest", d)
	}
	if _, ok := u.c.blobs.Has(d); !ok {
		if err := u.c.fetchBlob(ctx, d); err != nil {
			return nil, blobStatus(err)
		}
	}
	timeout := time.Duration(req.GetTimeoutSeconds()) * time.Second
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	id, err := u.c.SendCommand(ctx, req.GetAgent(), &agentv1.Operation{Op: &agentv1.Operation_AgentUpgrade{AgentUpgrade: &agentv1.AgentUpgrade{Sha256: d, Size: req.GetSize()}}})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rec, err := u.c.WaitResult(wctx, id)
	detail := fmt.Sprintf("agent %s to sha256:%s", req.GetAgent(), d)
	if err != nil {
		u.c.auditAction(ctx, "agent upgrade", "no answer", detail)
		return nil, err
	}
	res := rec.GetResult()
	if !res.GetOk() {
		u.c.auditAction(ctx, "agent upgrade", "refused", detail+": "+res.GetError())
		return nil, status.Errorf(codes.FailedPrecondition, "controller: agent %s refused the upgrade: %s", req.GetAgent(), res.GetError())
	}
	u.c.auditAction(ctx, "agent upgrade", "installed", detail+", version "+res.GetAgentVersion())
	return &fleetv1.UpgradeAgentResponse{Version: res.GetAgentVersion(), CommandId: id}, nil
}
