package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/rpcerr"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// The control plane's own secret, the CA's private key, is in Raft (so any
// leader can sign) only sealed: under a data key (DEK), which is stored in
// Raft wrapped by the key-encryption key (KEK). The KEK lives outside Raft,
// in the data dir's kek file (0600), and reaches a joining controller in
// its Join response over the pinned mTLS connection. raft.db, its log and
// its snapshots hold no plaintext key. (docs/security.md)

func dataKeyAAD(clusterID string) []byte { return []byte("kctl data key v1\x00" + clusterID) }
func caKeyAAD(clusterID string) []byte   { return []byte("kctl CA key v1\x00" + clusterID) }

// sealCARecord returns the cluster record with the CA key sealed under a
// new data key wrapped by kek.
func sealCARecord(kek []byte, clusterID string, certPEM, keyPEM []byte) (*controllerv1.ClusterRecord, error) {
	dek := sealbox.NewSymmetricKey()
	wrapped, err := sealbox.Wrap(kek, dek, dataKeyAAD(clusterID))
	if err != nil {
		return nil, fmt.Errorf("controller: wrap the data key: %w", err)
	}
	sealed, err := sealbox.Wrap(dek, keyPEM, caKeyAAD(clusterID))
	if err != nil {
		return nil, fmt.Errorf("controller: seal the CA key: %w", err)
	}
	return &controllerv1.ClusterRecord{ClusterId: clusterID, CaCertPem: certPEM, CaKeySealed: sealed, DataKeyWrapped: wrapped}, nil
}

// caKeyPEM opens the CA key of rec with the controller's KEK.
func (c *Controller) caKeyPEM(rec *controllerv1.ClusterRecord) ([]byte, error) {
	if len(rec.GetCaKeySealed()) == 0 {
		return rec.GetCaKeyPem(), nil // a cluster made before keys were sealed
	}
	kek, err := c.currentKEK()
	if err != nil {
		return nil, err
	}
	if len(kek) == 0 && c.cfg.Autolock {
		return nil, fmt.Errorf("controller: %s is locked (--autolock) and cannot use the CA: an admin must run `kctl cluster unlock`", c.cfg.Name)
	}
	if len(kek) == 0 {
		return nil, fmt.Errorf("controller: no key-encryption key in %s: this controller cannot use the CA until it is there (copy it from another controller, 0600)", c.kekPath())
	}
	dek, err := sealbox.Unwrap(kek, rec.GetDataKeyWrapped(), dataKeyAAD(rec.GetClusterId()))
	if err != nil {
		c.kekMu.Lock()
		if bytes.Equal(c.kek, kek) {
			c.kek = nil // read the file again next time
		}
		c.kekMu.Unlock()
		return nil, fmt.Errorf("controller: the key-encryption key in %s does not open this cluster's data key (rotated while this controller was away? give it the new key with `kctl cluster unlock --key-file FILE`): %w", c.kekPath(), err)
	}
	key, err := sealbox.Unwrap(dek, rec.GetCaKeySealed(), caKeyAAD(rec.GetClusterId()))
	if err != nil {
		return nil, fmt.Errorf("controller: the CA key does not open: %w", err)
	}
	return key, nil
}

// saveKEK keeps kek and writes it to its file (0600), unless --autolock
// keeps it in memory only.
func (c *Controller) saveKEK(kek []byte) error {
	if len(kek) != sealbox.SymmetricKeySize {
		return fmt.Errorf("%w: a key-encryption key of %d bytes", ErrJoin, len(kek))
	}
	if !c.cfg.Autolock {
		if err := atomicfile.WriteFile(c.kekPath(), kek, 0o600); err != nil {
			return fmt.Errorf("%w: %w", ErrDataDir, err)
		}
	}
	c.kekMu.Lock()
	c.kek = kek
	c.kekMu.Unlock()
	return nil
}

// currentKEK returns the KEK, reading it from its file if this controller
// started without it (kept on storage mounted later, --kek-file): until it
// is there, the controller serves Raft and the API but cannot sign.
func (c *Controller) currentKEK() ([]byte, error) {
	c.kekMu.Lock()
	kek := c.kek
	c.kekMu.Unlock()
	if len(kek) > 0 {
		return kek, nil
	}
	if err := c.loadKEK(); err != nil {
		return nil, err
	}
	c.kekMu.Lock()
	defer c.kekMu.Unlock()
	return c.kek, nil
}

// loadKEK reads the KEK file; a data dir made before it existed has none.
// With --autolock there must be none: the KEK arrives by Unlock.
func (c *Controller) loadKEK() error {
	if c.cfg.Autolock {
		if _, err := os.Stat(c.kekPath()); err == nil {
			return fmt.Errorf("%w: --autolock keeps the key-encryption key in memory only, but %s holds it: keep a copy off this machine (it is the unlock key), then remove the file", ErrDataDir, c.kekPath())
		}
		return nil
	}
	b, err := os.ReadFile(c.kekPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrDataDir, err)
	case len(b) != sealbox.SymmetricKeySize:
		return fmt.Errorf("%w: %s holds %d bytes, not a key-encryption key", ErrDataDir, c.kekPath(), len(b))
	}
	c.kekMu.Lock()
	c.kek = b
	c.kekMu.Unlock()
	return nil
}

// CA returns the cluster CA, its key opened with this controller's KEK.
func (c *Controller) CA() (*pki.CA, error) { return c.ca() }

// kekPath is where the KEK is kept: --kek-file, or the data dir's kek.
func (c *Controller) kekPath() string {
	if c.cfg.KEKFile != "" {
		return c.cfg.KEKFile
	}
	return c.path(kekFile)
}

// openDataKey reports whether kek opens rec's data key.
func openDataKey(rec *controllerv1.ClusterRecord, kek []byte) error {
	_, err := sealbox.Unwrap(kek, rec.GetDataKeyWrapped(), dataKeyAAD(rec.GetClusterId()))
	return err
}

// Unlock takes the key-encryption key of a controller started with
// --autolock (or one whose KEK file is missing), after checking that it
// opens the cluster's data key, and audits it. Errors: InvalidArgument
// (not the key), FailedPrecondition (a cluster whose CA key is not
// sealed), Unavailable (no cluster state yet).
func (s *api) Unlock(ctx context.Context, req *controllerv1.UnlockRequest) (*controllerv1.UnlockResponse, error) {
	c := s.c
	rec, err := c.clusterRecord()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if len(rec.GetCaKeySealed()) == 0 {
		return nil, status.Error(codes.FailedPrecondition, "controller: this cluster's CA key is not sealed: there is nothing to unlock")
	}
	if len(req.GetKey()) != sealbox.SymmetricKeySize || openDataKey(rec, req.GetKey()) != nil {
		return nil, status.Error(codes.InvalidArgument, "controller: that is not this cluster's unlock key (the unlock_key of the admin credentials --init wrote, or the key `kctl cluster unlock-key --rotate` printed last)")
	}
	if err := c.saveKEK(req.GetKey()); err != nil {
		return nil, rpcerr.Status(err)
	}
	e := &deployv1.AuditEntry{UnixMillis: c.cfg.Clock.Now().UnixMilli(), Operator: caller(ctx), Action: "unlocked controller " + c.cfg.Name, Result: "ok"}
	if _, err := c.apply(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Audit.Append(e)}}); err != nil {
		c.log.Warn("recording the unlock in the audit failed", "err", err)
	}
	c.log.Info("unlocked", "by", caller(ctx))
	return &controllerv1.UnlockResponse{Controller: c.cfg.Name}, nil
}
