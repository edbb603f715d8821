package controller

import (
	"context"
	"fmt"
	"time"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/auditchain"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// AuditRetention is how much of the audit chain the leader keeps: links
// older than MaxAge or beyond the newest MaxEntries are dropped (0: no
// limit), and the chain is anchored in a checkpoint (the last dropped
// link's sequence number and hash, the count dropped) signed by the cluster
// CA key, so `kctl audit verify` still checks what remains.
type AuditRetention struct {
	MaxAge     time.Duration
	MaxEntries int
}

// maxRetentionDrop bounds the links one retention write deletes.
const maxRetentionDrop = 5000

// retainAudit applies the retention policy every minute while leading.
func (c *Controller) retainAudit(ctx context.Context) {
	r := c.cfg.AuditRetention
	if r.MaxAge <= 0 && r.MaxEntries <= 0 {
		return
	}
	t := c.cfg.Clock.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if err := c.trimAudit(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("audit retention failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// trimAudit drops what the retention policy no longer keeps, in writes of
// at most maxRetentionDrop links, each moving the signed checkpoint.
func (c *Controller) trimAudit(ctx context.Context) error {
	for {
		cmd, err := c.trimCommand(c.store.View(), c.cfg.Clock.Now())
		if err != nil || cmd == nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := c.apply(wctx, cmd)
		cancel()
		if err != nil {
			return err
		}
		if !res.GetApplied() {
			return fmt.Errorf("controller: audit checkpoint changed meanwhile: %s", res.GetConflict())
		}
	}
}

// trimCommand is the write dropping the oldest links past the policy at
// now, with the new signed checkpoint (nil when nothing is to drop).
func (c *Controller) trimCommand(v *raftstore.Snapshot, now time.Time) (*raftcmdv1.Command, error) {
	r := c.cfg.AuditRetention
	rows := schema.Audit.Rows(v)
	drop := 0
	if r.MaxEntries > 0 && len(rows) > r.MaxEntries {
		drop = len(rows) - r.MaxEntries
	}
	if r.MaxAge > 0 {
		cutoff := now.Add(-r.MaxAge).UnixMilli()
		for drop < len(rows) && rows[drop].Value.GetUnixMillis() < cutoff {
			drop++
		}
	}
	drop = min(drop, maxRetentionDrop)
	if drop == 0 {
		return nil, nil
	}
	old, ver, _ := schema.AuditCheckpoint.Get(v, schema.KeyCheckpoint)
	last := rows[drop-1].Link
	cp := auditchain.Checkpoint{Seq: last.GetSeq(), Hash: last.GetHash(), Dropped: old.GetDropped() + uint64(drop), UnixMillis: now.UnixMilli()}
	ca, err := c.ca()
	if err != nil {
		return nil, err
	}
	if cp.Signature, err = ca.SignDigest(auditchain.CheckpointDigest(cp)); err != nil {
		return nil, err
	}
	cmd := &raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{schema.AuditCheckpoint.IfVersion(schema.KeyCheckpoint, ver), schema.Audit.IfPresent(rows[drop-1].Key)},
		Mutations: []*raftcmdv1.Mutation{schema.AuditCheckpoint.Put(schema.KeyCheckpoint, &deployv1.AuditCheckpoint{
			Seq: cp.Seq, Hash: cp.Hash, Dropped: cp.Dropped, UnixMillis: cp.UnixMillis, Signature: cp.Signature,
		})},
	}
	for _, row := range rows[:drop] {
		cmd.Mutations = append(cmd.Mutations, schema.Audit.Delete(row.Key))
	}
	return cmd, nil
}
