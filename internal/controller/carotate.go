package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/auditchain"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// CA rotation (docs/pki.md, "CA rotation"). RotateCA makes a new CA,
// cross-signs its key with the old one and writes, in one Raft command, the
// cluster record with the new CA (certificate and sealed key: every later
// signature is the new CA's), the old CA certificate and the cross-signed
// certificate (both still trusted or presented), the start and the grace
// period, and every agent's encryption key re-certified by the new CA.
// Every controller follows the record (followTrust): its trust bundle, then
// its own certificate; agents renew when the session's ca_trust differs
// from theirs, operators when a response's kctl-ca-trust header does. After
// the grace period the leader drops the old CA (completeRotation); the old
// CA's key is not kept anywhere.

// DefaultCAGrace is how long both CAs are trusted when RotateCA gets 0.
const DefaultCAGrace = 24 * time.Hour

// MinCAGrace is the shortest grace period accepted.
const MinCAGrace = time.Second

// recordBundle is the trust bundle of rec: the current CA, then the old CA
// and the cross-signed certificate during a rotation.
func recordBundle(rec *controllerv1.ClusterRecord) []byte {
	var b bytes.Buffer
	b.Write(rec.GetCaCertPem())
	b.Write(rec.GetOldCaCertPem())
	b.Write(rec.GetCrossCertPem())
	return b.Bytes()
}

// trustIDCache memoizes recordTrustID for the last bundle: it is asked on
// every unary call and every agent heartbeat, and parsing verifies
// signatures.
var trustIDCache struct {
	sync.Mutex
	bundle []byte
	id     string
}

func recordTrustID(rec *controllerv1.ClusterRecord) string {
	b := recordBundle(rec)
	trustIDCache.Lock()
	defer trustIDCache.Unlock()
	if trustIDCache.bundle != nil && bytes.Equal(trustIDCache.bundle, b) {
		return trustIDCache.id
	}
	tb, err := pki.ParseTrustBundle(b)
	if err != nil {
		return ""
	}
	trustIDCache.bundle, trustIDCache.id = b, tb.ID
	return tb.ID
}

// trustBundle is the cluster's trust bundle from Raft state, or this
// controller's own when it has no state yet.
func (c *Controller) trustBundle() []byte {
	rec, err := c.clusterRecord()
	if err != nil {
		return c.creds.CACert().Raw
	}
	return recordBundle(rec)
}

// CATrust is the cluster's pki.TrustID (announced to agents and operators).
func (c *Controller) CATrust() string {
	rec, err := c.clusterRecord()
	if err != nil {
		return c.creds.TrustID()
	}
	return recordTrustID(rec)
}

// CATrust makes the dispatcher announce the cluster's trust to agents.
func (d dispatcherCluster) CATrust() string { return d.c.CATrust() }

// trustsOldCA reports whether digest is the old CA of a rotation in
// progress (a token made before the rotation still works until it ends).
func (c *Controller) trustsOldCA(digest string) bool {
	rec, err := c.clusterRecord()
	if err != nil || len(rec.GetOldCaCertPem()) == 0 {
		return false
	}
	old, err := pki.ParseCertificate(rec.GetOldCaCertPem())
	return err == nil && pki.Digest(old.Raw) == digest
}

// RotateCA starts a CA rotation. Errors: FailedPrecondition (one is in
// progress), InvalidArgument (grace), Unavailable (no CA key here).
func (s *api) RotateCA(ctx context.Context, req *controllerv1.RotateCARequest) (*controllerv1.RotateCAResponse, error) {
	c := s.c
	grace := time.Duration(req.GetGraceMillis()) * time.Millisecond
	if grace == 0 {
		grace = DefaultCAGrace
	}
	if grace < MinCAGrace || grace > 365*24*time.Hour {
		return nil, status.Errorf(codes.InvalidArgument, "controller: a grace period of %s: give between %s and 365 days", grace, MinCAGrace)
	}
	oldCA, err := c.ca()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	newCA, err := pki.NewCA(oldCA.ClusterID())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	cross, err := pki.CrossSign(oldCA, newCA)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	keyPEM, err := newCA.KeyPEM()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	kek, err := c.currentKEK()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	now := c.cfg.Clock.Now()
	resp := &controllerv1.RotateCAResponse{OldCaDigest: oldCA.Digest(), NewCaDigest: newCA.Digest(), RetireUnixMillis: now.Add(grace).UnixMilli()}
	err = c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := schema.Cluster.Get(v, schema.KeyCA)
		if !ok {
			return nil, status.Error(codes.Unavailable, "controller: no cluster state yet")
		}
		if len(rec.GetOldCaCertPem()) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "controller: a CA rotation is already in progress until %s (kctl cluster ca status)",
				time.UnixMilli(rec.GetRotationStartedUnixMillis()+rec.GetRotationGraceMillis()).UTC().Format(time.RFC3339))
		}
		if !bytes.Equal(rec.GetCaCertPem(), oldCA.CertPEM) {
			return nil, status.Error(codes.FailedPrecondition, "controller: the CA changed while the rotation was prepared (another rotation?): see kctl cluster ca status")
		}
		next := proto.Clone(rec).(*controllerv1.ClusterRecord)
		if len(kek) > 0 {
			sealed, err := sealCARecord(kek, rec.GetClusterId(), newCA.CertPEM, keyPEM)
			if err != nil {
				return nil, err
			}
			next.CaKeySealed, next.DataKeyWrapped, next.CaKeyPem = sealed.CaKeySealed, sealed.DataKeyWrapped, nil
		} else {
			next.CaKeyPem = keyPEM // a cluster made before keys were sealed
		}
		next.CaCertPem = newCA.CertPEM
		next.OldCaCertPem, next.CrossCertPem = oldCA.CertPEM, cross
		next.RotationStartedUnixMillis, next.RotationGraceMillis = now.UnixMilli(), grace.Milliseconds()
		cmd := &raftcmdv1.Command{
			Preconditions: []*raftcmdv1.Precondition{schema.Cluster.IfVersion(schema.KeyCA, ver)},
			Mutations:     []*raftcmdv1.Mutation{schema.Cluster.Put(schema.KeyCA, next)},
		}
		// Re-certify every agent's encryption key with the new CA.
		for _, a := range schema.Agents.Values(v, "") {
			if len(a.GetEncryptionKey()) == 0 {
				continue
			}
			sig, err := newCA.CertifyEncryptionKey(a.GetName(), a.GetEncryptionKey())
			if err != nil {
				return nil, err
			}
			_, aver, _ := schema.Agents.Get(v, a.GetName())
			a.EncryptionKeySig = sig
			cmd.Preconditions = append(cmd.Preconditions, schema.Agents.IfVersion(a.GetName(), aver))
			cmd.Mutations = append(cmd.Mutations, schema.Agents.Put(a.GetName(), a))
		}
		// The audit checkpoint is signed by the CA: sign it again with the
		// new one, which kctl audit verify checks it against.
		if old, cver, ok := schema.AuditCheckpoint.Get(v, schema.KeyCheckpoint); ok && len(old.GetSignature()) > 0 {
			cp := auditchain.Checkpoint{Seq: old.GetSeq(), Hash: old.GetHash(), Dropped: old.GetDropped(), UnixMillis: old.GetUnixMillis()}
			sig, err := newCA.SignDigest(auditchain.CheckpointDigest(cp))
			if err != nil {
				return nil, err
			}
			re := proto.Clone(old).(*deployv1.AuditCheckpoint)
			re.Signature = sig
			cmd.Preconditions = append(cmd.Preconditions, schema.AuditCheckpoint.IfVersion(schema.KeyCheckpoint, cver))
			cmd.Mutations = append(cmd.Mutations, schema.AuditCheckpoint.Put(schema.KeyCheckpoint, re))
		}
		cmd.Mutations = append(cmd.Mutations, schema.Audit.Append(&deployv1.AuditEntry{
			UnixMillis: now.UnixMilli(), Operator: caller(ctx), Result: "ok",
			Action: fmt.Sprintf("rotated the cluster CA %s to %s (grace %s)", short(oldCA.Digest()), short(newCA.Digest()), grace),
		}))
		return cmd, nil
	})
	if err != nil {
		return nil, err
	}
	c.log.Info("CA rotation started", "old", short(oldCA.Digest()), "new", short(newCA.Digest()), "grace", grace, "by", caller(ctx))
	c.followTrust(ctx)
	return resp, nil
}

func short(digest string) string { return digest[:min(12, len(digest))] }

// CAStatus reports the CA and who still holds a certificate of the old one.
func (s *api) CAStatus(ctx context.Context, _ *controllerv1.CAStatusRequest) (*controllerv1.CAStatusResponse, error) {
	c := s.c
	rec, err := c.clusterRecord()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	cur, err := pki.ParseCertificate(rec.GetCaCertPem())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "controller: the CA certificate in Raft: %v", err)
	}
	digest := pki.Digest(cur.Raw)
	resp := &controllerv1.CAStatusResponse{CaDigest: digest}
	if len(rec.GetOldCaCertPem()) > 0 {
		old, err := pki.ParseCertificate(rec.GetOldCaCertPem())
		if err == nil {
			resp.OldCaDigest = pki.Digest(old.Raw)
		}
		resp.Rotating = true
		resp.StartedUnixMillis = rec.GetRotationStartedUnixMillis()
		resp.RetireUnixMillis = rec.GetRotationStartedUnixMillis() + rec.GetRotationGraceMillis()
	}
	v := c.store.View()
	for _, n := range schema.Nodes.Values(v, "") {
		resp.Holders = append(resp.Holders, &controllerv1.CAHolder{Role: string(pki.RoleController), Name: n.GetName(), OnNewCa: n.GetIssuerDigest() == digest})
	}
	for _, a := range schema.Agents.Values(v, "") {
		resp.Holders = append(resp.Holders, &controllerv1.CAHolder{Role: string(pki.RoleAgent), Name: a.GetName(), OnNewCa: a.GetIssuerDigest() == digest})
	}
	for _, o := range schema.Operators.Values(v, "") {
		resp.Holders = append(resp.Holders, &controllerv1.CAHolder{Role: string(pki.RoleOperator), Name: o.GetName(), OnNewCa: o.GetIssuerDigest() == digest})
	}
	return resp, nil
}

// caLoop follows the cluster record on every controller (trust bundle, own
// certificate) and, on the leader, ends a rotation whose grace period is
// over. It wakes on every state change and once a second (the grace period
// is measured by the injectable clock).
func (c *Controller) caLoop(ctx context.Context) {
	ch, stopWatch := c.store.Watch()
	defer stopWatch()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		c.followTrust(ctx)
		if c.IsLeader() {
			if err := c.completeRotation(ctx); err != nil {
				c.log.Warn("ending the CA rotation failed; will retry", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-t.C:
		}
	}
}

// followTrust makes this controller's trust bundle the cluster record's
// and renews its certificate when the current CA did not issue it.
func (c *Controller) followTrust(ctx context.Context) {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	rec, err := c.clusterRecord()
	if err != nil {
		return
	}
	if id := recordTrustID(rec); id != "" && id != c.creds.TrustID() {
		bundle := recordBundle(rec)
		if err := c.creds.SetTrust(bundle); err != nil {
			c.log.Warn("taking the cluster's CA bundle failed", "err", err)
			return
		}
		if err := atomicfile.WriteFile(c.path(caCertFile), bundle, 0o600); err != nil {
			c.log.Warn("writing the CA bundle failed", "err", err)
		}
		c.log.Info("trusting the cluster's CAs", "trust", id, "cas", len(c.creds.CACerts()))
	}
	if !c.creds.OnCurrentCA() {
		err := c.renewSelf(ctx)
		if err != nil {
			// No CA key here (locked, no KEK): another controller signs.
			err = errors.Join(err, c.renewFromPeer(ctx))
		}
		if err != nil && !c.creds.OnCurrentCA() {
			c.log.Warn("renewing the certificate from the new CA failed; will retry", "err", err)
			return
		}
		c.log.Info("certificate re-issued by the new CA")
	}
}

// renewFromPeer renews this controller's certificate through the
// RenewCertificate RPC of another controller.
func (c *Controller) renewFromPeer(ctx context.Context) error {
	keyPEM, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(keyPEM, c.creds.Identity())
	if err != nil {
		return err
	}
	var addrs []string
	for _, a := range c.controllerAddrs() {
		if a != c.cfg.APIAddress {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return errors.New("controller: no other controller to renew from")
	}
	var resp *controllerv1.RenewCertificateResponse
	if err := ctlclient.NewClient(c.creds, addrs, 2*time.Second).Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (err error) {
		resp, err = cc.RenewCertificate(ctx, &controllerv1.RenewCertificateRequest{CsrPem: csr})
		return err
	}); err != nil {
		return err
	}
	if err := c.creds.UpdateTrust(resp.GetCertPem(), keyPEM, resp.GetCaPem()); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.path(caCertFile), resp.GetCaPem(), 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.path(nodeKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(c.path(nodeCertFile), resp.GetCertPem(), 0o600)
}

// completeRotation drops the old CA once the grace period is over.
func (c *Controller) completeRotation(ctx context.Context) error {
	now := c.cfg.Clock.Now()
	return c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := schema.Cluster.Get(v, schema.KeyCA)
		if !ok || len(rec.GetOldCaCertPem()) == 0 {
			return nil, nil
		}
		if now.UnixMilli() < rec.GetRotationStartedUnixMillis()+rec.GetRotationGraceMillis() {
			return nil, nil
		}
		next := proto.Clone(rec).(*controllerv1.ClusterRecord)
		next.OldCaCertPem, next.CrossCertPem = nil, nil
		next.RotationStartedUnixMillis, next.RotationGraceMillis = 0, 0
		var left int
		for _, a := range schema.Agents.Values(v, "") {
			if a.GetIssuerDigest() != pki.Digest(mustCert(rec.GetCaCertPem())) {
				left++
			}
		}
		return &raftcmdv1.Command{
			Preconditions: []*raftcmdv1.Precondition{schema.Cluster.IfVersion(schema.KeyCA, ver)},
			Mutations: []*raftcmdv1.Mutation{schema.Cluster.Put(schema.KeyCA, next), schema.Audit.Append(&deployv1.AuditEntry{
				UnixMillis: now.UnixMilli(), Operator: "controller " + c.cfg.Name, Result: "ok",
				Action: fmt.Sprintf("retired the old cluster CA after the grace period (%d agents had not renewed and must enrol again)", left),
			})},
		}, nil
	})
}

func mustCert(pemBytes []byte) []byte {
	c, err := pki.ParseCertificate(pemBytes)
	if err != nil {
		return nil
	}
	return c.Raw
}
