package controller

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/pki"
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
		return nil, fmt.Errorf("controller: the key-encryption key in %s does not open this cluster's data key: %w", c.kekPath(), err)
	}
	key, err := sealbox.Unwrap(dek, rec.GetCaKeySealed(), caKeyAAD(rec.GetClusterId()))
	if err != nil {
		return nil, fmt.Errorf("controller: the CA key does not open: %w", err)
	}
	return key, nil
}

// saveKEK keeps kek and writes it to the data dir (0600).
func (c *Controller) saveKEK(kek []byte) error {
	if len(kek) != sealbox.SymmetricKeySize {
		return fmt.Errorf("%w: a key-encryption key of %d bytes", ErrJoin, len(kek))
	}
	if err := atomicfile.WriteFile(c.kekPath(), kek, 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrDataDir, err)
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
func (c *Controller) loadKEK() error {
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
