package controller

import (
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
	if len(c.kek) == 0 {
		return nil, fmt.Errorf("controller: no key-encryption key in %s: this controller cannot use the CA (copy the kek file from another controller, 0600)", c.path(kekFile))
	}
	dek, err := sealbox.Unwrap(c.kek, rec.GetDataKeyWrapped(), dataKeyAAD(rec.GetClusterId()))
	if err != nil {
		return nil, fmt.Errorf("controller: the key-encryption key in %s does not open this cluster's data key: %w", c.path(kekFile), err)
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
	if err := atomicfile.WriteFile(c.path(kekFile), kek, 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	c.kek = kek
	return nil
}

// loadKEK reads the data dir's KEK; a data dir made before it existed has
// none.
func (c *Controller) loadKEK() error {
	b, err := os.ReadFile(c.path(kekFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%w: %w", ErrDataDir, err)
	case len(b) != sealbox.SymmetricKeySize:
		return fmt.Errorf("%w: %s holds %d bytes, not a key-encryption key", ErrDataDir, c.path(kekFile), len(b))
	}
	c.kek = b
	return nil
}

// CA returns the cluster CA, its key opened with this controller's KEK.
func (c *Controller) CA() (*pki.CA, error) { return c.ca() }
