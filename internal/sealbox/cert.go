package sealbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
)

// statement is what the cluster CA signs to certify an agent's encryption
// key: a domain label (so it can never be mistaken for a certificate, whose
// to-be-signed bytes are DER and start with 0x30), the agent's name and the
// public key, each length-prefixed.
func statement(agent string, pub []byte) []byte {
	b := []byte("kctl agent encryption key v1\x00")
	b = binary.AppendUvarint(b, uint64(len(agent)))
	b = append(b, agent...)
	b = binary.AppendUvarint(b, uint64(len(pub)))
	return append(b, pub...)
}

// Certify signs, with the CA's key, the statement that pub is agent's
// encryption key.
func Certify(ca crypto.Signer, agent string, pub []byte) ([]byte, error) {
	if _, err := kem().NewPublicKey(pub); err != nil {
		return nil, fmt.Errorf("sealbox: not an encryption public key: %w", err)
	}
	d := sha256.Sum256(statement(agent, pub))
	sig, err := ca.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sealbox: certify: %w", err)
	}
	return sig, nil
}

// Verify checks that sig, made by the CA of caCert, certifies pub as
// agent's encryption key. An empty pub is ErrNoKey.
func Verify(caCert *x509.Certificate, agent string, pub, sig []byte) error {
	if len(pub) == 0 {
		return fmt.Errorf("%w: agent %s was enrolled before agents had encryption keys: re-enrol it (`kctl agents remove %s`, clear its data dir, start it with a new token) before sending it secrets", ErrNoKey, agent, agent)
	}
	k, ok := caCert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: the cluster CA's key is not ECDSA", ErrCertification)
	}
	d := sha256.Sum256(statement(agent, pub))
	if !ecdsa.VerifyASN1(k, d[:], sig) {
		return fmt.Errorf("%w: agent %s's key is not certified by this cluster's CA (a controller may be compromised, or the agent's record is damaged)", ErrCertification, agent)
	}
	return nil
}
