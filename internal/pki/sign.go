package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
)

// SignDigest signs a SHA-256 digest with the CA key (ASN.1 ECDSA): for
// records the cluster vouches for, such as the audit chain's checkpoint.
// Verify with the CA certificate's public key (ecdsa.VerifyASN1).
func (ca *CA) SignDigest(digest []byte) ([]byte, error) {
	return ecdsa.SignASN1(rand.Reader, ca.key, digest)
}
