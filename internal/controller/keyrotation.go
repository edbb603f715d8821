package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/rpcerr"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// Rotation of the control plane's keys (docs/security.md):
//
//   - the key-encryption key (KEK, the unlock key with --autolock):
//     UnlockKey with rotate wraps the data key under a new KEK in one Raft
//     command, then gives the new KEK to every other controller over
//     mutual TLS (InternalService.ReceiveKEK, as a joiner receives it in
//     its Join response); the old KEK opens nothing any more;
//   - the data key (DEK): RotateDataKey seals what the old DEK sealed (the
//     CA key) under a new DEK in one Raft command;
//   - the migration of a cluster an older build made, whose record holds
//     the CA key in plaintext: the leader seals it (sealPlaintextCAKey).
//
// After each, every controller purges its Raft log and older snapshots
// (purgeLoop), so the old ciphertext (or the plaintext) leaves its disk.

// purgedFile records the cluster record's version that the last purge of
// this controller's Raft storage covered.
const purgedFile = "purged"

// purgeRetry is the pause after a failed purge (a snapshot already in
// progress, a full disk) before the next write tries again.
const purgeRetry = 10 * time.Second

// keyDeliveryTimeout bounds how long a rotation waits for each controller
// to take the new key.
const keyDeliveryTimeout = 10 * time.Second

// openRecord returns the sealed cluster record, its version and its data
// key, opened with this controller's KEK (which it also returns).
func (c *Controller) openRecord(ctx context.Context) (rec *controllerv1.ClusterRecord, version uint64, kek, dek []byte, err error) {
	if err := c.linearize(ctx); err != nil {
		return nil, 0, nil, nil, err
	}
	rec, version, ok := schema.Cluster.Get(c.store.View(), schema.KeyCA)
	if !ok {
		return nil, 0, nil, nil, status.Error(codes.Unavailable, "controller: this controller has not yet received the cluster state")
	}
	if len(rec.GetCaKeySealed()) == 0 {
		return nil, 0, nil, nil, status.Error(codes.FailedPrecondition, "controller: this cluster's CA key is not sealed yet: its leader seals it at start (a controller started without --autolock must lead once); retry")
	}
	// caKeyPEM says why this controller cannot open the key (locked, no
	// kek file, a wrong one).
	if _, err := c.caKeyPEM(rec); err != nil {
		return nil, 0, nil, nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	kek, err = c.currentKEK()
	if err != nil {
		return nil, 0, nil, nil, rpcerr.Status(err)
	}
	dek, err = sealbox.Unwrap(kek, rec.GetDataKeyWrapped(), dataKeyAAD(rec.GetClusterId()))
	if err != nil {
		return nil, 0, nil, nil, status.Error(codes.Aborted, "controller: the cluster's keys changed meanwhile; retry")
	}
	return rec, version, kek, dek, nil
}

// UnlockKey returns the KEK, after replacing it if asked (see the proto).
func (s *api) UnlockKey(ctx context.Context, req *controllerv1.UnlockKeyRequest) (*controllerv1.UnlockKeyResponse, error) {
	c := s.c
	rec, version, kek, dek, err := c.openRecord(ctx)
	if err != nil {
		return nil, err
	}
	if !req.GetRotate() {
		return &controllerv1.UnlockKeyResponse{UnlockKey: kek}, nil
	}
	newKEK := sealbox.NewSymmetricKey()
	wrapped, err := sealbox.Wrap(newKEK, dek, dataKeyAAD(rec.GetClusterId()))
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	next := &controllerv1.ClusterRecord{ClusterId: rec.GetClusterId(), CaCertPem: rec.GetCaCertPem(), CaKeySealed: rec.GetCaKeySealed(), DataKeyWrapped: wrapped}
	res, err := c.applyKeys(ctx, version, next, "rotated the unlock key (key-encryption key)")
	if err != nil {
		return nil, err
	}
	deliveries := c.deliverKEK(ctx, newKEK, res.GetIndex())
	c.log.Info("rotated the key-encryption key", "by", caller(ctx))
	return &controllerv1.UnlockKeyResponse{UnlockKey: newKEK, Controllers: deliveries}, nil
}

// RotateDataKey seals the CA key under a new data key (see the proto).
func (s *api) RotateDataKey(ctx context.Context, _ *controllerv1.RotateDataKeyRequest) (*controllerv1.RotateDataKeyResponse, error) {
	c := s.c
	rec, version, kek, dek, err := c.openRecord(ctx)
	if err != nil {
		return nil, err
	}
	next, err := resealUnderNewDataKey(rec, kek, dek)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	res, err := c.applyKeys(ctx, version, next, "rotated the data key")
	if err != nil {
		return nil, err
	}
	c.log.Info("rotated the data key", "by", caller(ctx))
	return &controllerv1.RotateDataKeyResponse{Controllers: c.waitPurged(ctx, res.GetIndex())}, nil
}

// resealUnderNewDataKey returns rec with everything sealed under the data
// key dek (today the CA key) sealed under a new data key wrapped by kek.
// Whatever is sealed under the data key in future must be re-sealed here.
func resealUnderNewDataKey(rec *controllerv1.ClusterRecord, kek, dek []byte) (*controllerv1.ClusterRecord, error) {
	keyPEM, err := sealbox.Unwrap(dek, rec.GetCaKeySealed(), caKeyAAD(rec.GetClusterId()))
	if err != nil {
		return nil, fmt.Errorf("controller: the CA key does not open: %w", err)
	}
	return sealCARecord(kek, rec.GetClusterId(), rec.GetCaCertPem(), keyPEM)
}

// applyKeys writes the cluster record next if it is still at version, with
// an audit entry, in one Raft command.
func (c *Controller) applyKeys(ctx context.Context, version uint64, next *controllerv1.ClusterRecord, action string) (*raftcmdv1.Result, error) {
	e := &deployv1.AuditEntry{UnixMillis: c.cfg.Clock.Now().UnixMilli(), Operator: caller(ctx), Action: action, Result: "ok"}
	res, err := c.apply(ctx, &raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{schema.Cluster.IfVersion(schema.KeyCA, version)},
		Mutations:     []*raftcmdv1.Mutation{schema.Cluster.Put(schema.KeyCA, next), schema.Audit.Append(e)},
	})
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	if !res.GetApplied() {
		return nil, status.Error(codes.Aborted, "controller: the cluster's keys changed meanwhile (another rotation?); nothing was changed: retry")
	}
	return res, nil
}

// deliverKEK keeps kek on this controller and gives it to every other one
// once it has applied index; it reports each controller's outcome.
func (c *Controller) deliverKEK(ctx context.Context, kek []byte, index uint64) []*controllerv1.KeyDelivery {
	self := &controllerv1.KeyDelivery{Controller: c.cfg.Name}
	if err := c.saveKEK(kek); err != nil {
		self.Error = err.Error()
	}
	out := []*controllerv1.KeyDelivery{self}
	out = append(out, c.eachPeer(ctx, func(ctx context.Context, cl controllerv1.InternalServiceClient) error {
		_, err := cl.ReceiveKEK(ctx, &controllerv1.ReceiveKEKRequest{Kek: kek, Index: index})
		return err
	})...)
	for _, d := range out {
		if d.GetError() != "" {
			c.log.Warn("a controller did not take the new key-encryption key: give it the new unlock key with `kctl cluster unlock`", "peer", d.GetController(), "err", d.GetError())
		}
	}
	return out
}

// waitPurged waits until every controller has applied index (each then
// purges its log and older snapshots: purgeLoop) and reports which did.
func (c *Controller) waitPurged(ctx context.Context, index uint64) []*controllerv1.KeyDelivery {
	out := []*controllerv1.KeyDelivery{{Controller: c.cfg.Name}}
	return append(out, c.eachPeer(ctx, func(ctx context.Context, cl controllerv1.InternalServiceClient) error {
		_, err := cl.WaitApplied(ctx, &controllerv1.WaitAppliedRequest{Index: index})
		return err
	})...)
}

// eachPeer calls fn on every other controller concurrently, each bounded
// by keyDeliveryTimeout, and reports the outcomes sorted by name.
func (c *Controller) eachPeer(ctx context.Context, fn func(context.Context, controllerv1.InternalServiceClient) error) []*controllerv1.KeyDelivery {
	var (
		mu  sync.Mutex
		out []*controllerv1.KeyDelivery
		wg  sync.WaitGroup
	)
	for _, n := range schema.Nodes.Values(c.store.View(), "") {
		if n.GetName() == c.cfg.Name {
			continue
		}
		wg.Go(func() {
			d := &controllerv1.KeyDelivery{Controller: n.GetName()}
			err := errors.New("no known API address")
			if n.GetApiAddress() != "" {
				var cc *grpc.ClientConn
				if cc, err = c.peers.connAddr(n.GetApiAddress()); err == nil {
					cctx, cancel := context.WithTimeout(ctx, keyDeliveryTimeout)
					err = fn(cctx, controllerv1.NewInternalServiceClient(cc))
					cancel()
				}
			}
			if err != nil {
				d.Error = shortErr(err)
			}
			mu.Lock()
			out = append(out, d)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b *controllerv1.KeyDelivery) int { return cmp.Compare(a.GetController(), b.GetController()) })
	return out
}

// ReceiveKEK takes the new KEK from the controller that rotated it (see
// the proto).
func (s *internalAPI) ReceiveKEK(ctx context.Context, req *controllerv1.ReceiveKEKRequest) (*controllerv1.ReceiveKEKResponse, error) {
	c := s.c
	if err := c.store.WaitForIndex(ctx, req.GetIndex()); err != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "%v", err)
	}
	rec, err := c.clusterRecord()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if len(req.GetKek()) != sealbox.SymmetricKeySize || openDataKey(rec, req.GetKek()) != nil {
		return nil, status.Error(codes.InvalidArgument, "controller: that key-encryption key does not open this cluster's data key")
	}
	if err := c.saveKEK(req.GetKek()); err != nil {
		return nil, rpcerr.Status(err)
	}
	c.log.Info("took a new key-encryption key", "from", caller(ctx))
	return &controllerv1.ReceiveKEKResponse{}, nil
}

// sealPlaintextCAKey migrates a cluster made by a build that kept the CA
// key in plaintext in Raft: the leader seals it under a new data key and
// a KEK (its own, or a new one it gives every other controller) in one
// Raft command; every controller then purges the plaintext from its disk
// (purgeLoop). A leader started with --autolock and no key leaves it to a
// leader without --autolock: it would make an unlock key nobody has seen.
// A failed attempt is retried while this controller leads.
func (c *Controller) sealPlaintextCAKey(ctx context.Context) {
	warned := false
	for {
		done, err := c.trySealPlaintextCAKey(ctx)
		if done {
			return
		}
		if err != nil && !warned {
			c.log.Warn("cannot seal the CA key stored in plaintext yet; retrying", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-c.cfg.Clock.After(purgeRetry):
		}
	}
}

// trySealPlaintextCAKey makes one attempt; done means there is nothing
// (more) to do.
func (c *Controller) trySealPlaintextCAKey(ctx context.Context) (done bool, err error) {
	rec, version, ok := schema.Cluster.Get(c.store.View(), schema.KeyCA)
	if !ok || len(rec.GetCaKeySealed()) > 0 || len(rec.GetCaKeyPem()) == 0 {
		return true, nil
	}
	if !c.Supports(protocol.FeatureSealedCAKey) {
		return false, fmt.Errorf("controllers of an older build could not open a sealed CA key: waiting until every controller is upgraded")
	}
	kek, err := c.currentKEK()
	if err != nil {
		return false, err
	}
	if len(kek) == 0 {
		if c.cfg.Autolock {
			return false, errors.New("this cluster's CA key is stored in plaintext in Raft (made by an older build); a controller started without --autolock seals it when it leads")
		}
		kek = sealbox.NewSymmetricKey()
		if err := c.saveKEK(kek); err != nil {
			return false, err
		}
	}
	next, err := sealCARecord(kek, rec.GetClusterId(), rec.GetCaCertPem(), rec.GetCaKeyPem())
	if err != nil {
		return false, err
	}
	res, err := c.applyKeys(ctx, version, next, "sealed the CA key stored in plaintext by an older build")
	if err != nil {
		return false, err
	}
	c.deliverKEK(ctx, kek, res.GetIndex())
	c.log.Info("sealed the CA key stored in plaintext; every controller now purges it from its Raft log and snapshots")
	return true, nil
}

// purgeLoop purges this controller's Raft log and older snapshots whenever
// the cluster record (the sealed CA key, the wrapped data key) changed
// since the last purge: after a rotation or the migration, the old key
// material leaves this controller's disk. The version purged last is kept
// in the data dir, so a controller that was down catches up at start.
func (c *Controller) purgeLoop(ctx context.Context) {
	ch, stop := c.store.Watch()
	defer stop()
	purged, fresh := c.readPurged()
	var retryAt time.Time
	for {
		rec, v, ok := schema.Cluster.Get(c.store.View(), schema.KeyCA)
		sealed := ok && len(rec.GetCaKeyPem()) == 0
		switch {
		case ok && fresh:
			// A data dir this build made holds nothing older than the
			// first record it sees, unless that is a plaintext one.
			fresh = false
			if sealed {
				purged = v
				c.writePurged(v)
			}
		case sealed && v > purged && !c.cfg.Clock.Now().Before(retryAt):
			if err := c.store.Purge(); err != nil {
				retryAt = c.cfg.Clock.Now().Add(purgeRetry)
				c.log.Warn("purging the Raft log after a key change failed; retrying", "err", err, "in", purgeRetry)
			} else {
				retryAt = time.Time{}
				purged = v
				c.writePurged(v)
			}
		}
		var retry <-chan time.Time
		if !retryAt.IsZero() {
			retry = c.cfg.Clock.After(retryAt.Sub(c.cfg.Clock.Now()))
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-retry:
		}
	}
}

func (c *Controller) writePurged(v uint64) {
	if err := atomicfile.WriteFile(c.path(purgedFile), []byte(strconv.FormatUint(v, 10)), 0o600); err != nil {
		c.log.Warn("recording the purge failed", "err", err)
	}
}

// markFreshDataDir records that this build made the data dir (--init or a
// join): purgeLoop then takes the first sealed record it sees as purged.
func (c *Controller) markFreshDataDir() error {
	if err := atomicfile.WriteFile(c.path(purgedFile), []byte(freshMark), 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	return nil
}

// freshMark is the purged file's content in a data dir this build made.
const freshMark = "new"

// readPurged returns the version the last purge covered, or fresh for a
// data dir this build made that has not seen a record yet.
func (c *Controller) readPurged() (v uint64, fresh bool) {
	b, err := os.ReadFile(c.path(purgedFile))
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == freshMark {
		return 0, true
	}
	v, _ = strconv.ParseUint(s, 10, 64)
	return v, false
}
