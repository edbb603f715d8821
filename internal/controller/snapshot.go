package controller

import (
	"crypto/sha256"
	"io"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/backupfile"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/rpcerr"
	"github.com/kctl-dev/kctl/internal/schema"
)

// snapshotChunk is the size of one SaveSnapshot chunk.
const snapshotChunk = 256 << 10

// backupAPI serves BackupService.
type backupAPI struct {
	controllerv1.UnimplementedBackupServiceServer
	c *Controller
}

// SaveSnapshot streams a consistent copy of every Raft table. It first
// records the backup in the audit log (so the state includes that entry),
// then makes its read linearizable (on a follower: waits for the leader's
// commit index) and streams the state as one immutable version: writes that
// run meanwhile are either wholly in it or not at all.
func (s *backupAPI) SaveSnapshot(_ *controllerv1.SaveSnapshotRequest, stream controllerv1.BackupService_SaveSnapshotServer) error {
	c := s.c
	ctx := stream.Context()
	who := caller(ctx)
	if _, err := c.apply(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Audit.Append(&deployv1.AuditEntry{
		UnixMillis: time.Now().UnixMilli(), Operator: who, Action: "cluster snapshot saved", Result: "ok",
		Detail: "controller " + c.cfg.Name,
	})}}); err != nil {
		return rpcerr.Status(err)
	}
	if err := c.linearize(ctx); err != nil {
		return rpcerr.Status(err)
	}
	if err := stream.Send(&controllerv1.SaveSnapshotResponse{Part: &controllerv1.SaveSnapshotResponse_Header{Header: &controllerv1.BackupHeader{
		Format: backupfile.Format, ProtocolVersion: uint32(protocol.Current()), ClusterId: c.clusterID,
		CreatedUnix: time.Now().Unix(), Controller: c.cfg.Name, CreatedBy: who,
	}}}); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	infoCh := make(chan raftstore.StateInfo, 1)
	go func() {
		info, err := c.store.WriteState(pw)
		infoCh <- info
		pw.CloseWithError(err)
	}()
	defer pr.Close() // unblocks the writer if the client went away
	h := sha256.New()
	var size uint64
	buf := make([]byte, snapshotChunk)
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			h.Write(buf[:n])
			size += uint64(n)
			if serr := stream.Send(&controllerv1.SaveSnapshotResponse{Part: &controllerv1.SaveSnapshotResponse_Chunk{Chunk: buf[:n]}}); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return rpcerr.Status(err)
		}
	}
	info := <-infoCh
	c.log.Info("cluster snapshot saved", "by", who, "applied_index", info.Index, "records", info.Records, "bytes", size)
	return stream.Send(&controllerv1.SaveSnapshotResponse{Part: &controllerv1.SaveSnapshotResponse_Trailer{Trailer: &controllerv1.BackupTrailer{
		Sha256: h.Sum(nil), Size: size, AppliedIndex: info.Index, Records: uint64(info.Records),
	}}})
}
