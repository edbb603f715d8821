// Package sealbox seals secrets so that only the party that needs them can
// read them, and keeps the control plane's own keys encrypted at rest.
//
// Deploy secrets travel end to end: kctl seals each host's secret values
// (env secrets, registry credentials, file contents) to that host's agent
// with HPKE (RFC 9180; ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM), and
// the controllers store and forward only the ciphertext. Every agent has a
// stable encryption key pair, made at enrolment and kept in its data dir;
// the cluster CA certifies its public key (Certify, Verify) and kctl checks
// that certification before it seals anything.
//
// In a request, each secret field holds a placeholder (Placeholder) naming
// its path; the host's sealed bundle maps those paths to the values
// (SealRequest). The agent opens the bundle in memory and puts the values
// back into the operation it runs (OpenOperation).
//
// The control plane's keys (the CA's private key) are stored in Raft only
// sealed under a data key, itself wrapped by a key-encryption key kept
// outside Raft (Wrap, Unwrap).
//
// The walker (VisitRequest, VisitOperation) is the one list of
// secret-bearing fields: internal/deploy redacts with it, kctl seals with
// it, the agent opens with it.
package sealbox

import (
	"bytes"
	"crypto/hpke"
	"errors"
	"fmt"
	"os"

	"github.com/kctl-dev/kctl/internal/atomicfile"
)

// Errors.
var (
	// ErrNoKey is returned when an agent has no certified encryption key.
	ErrNoKey = errors.New("sealbox: no certified encryption key")
	// ErrCertification is returned when a key's certification does not
	// verify against the cluster CA.
	ErrCertification = errors.New("sealbox: encryption key certification does not verify")
	// ErrOpen is returned when a sealed bundle cannot be opened.
	ErrOpen = errors.New("sealbox: cannot open sealed secrets")
)

// The HPKE suite: a post-quantum hybrid KEM, so secrets recorded today stay
// sealed against a future quantum adversary.
func kem() hpke.KEM   { return hpke.MLKEM768X25519() }
func kdf() hpke.KDF   { return hpke.HKDFSHA256() }
func aead() hpke.AEAD { return hpke.AES256GCM() }

// info binds a sealed bundle to the agent it is for.
func info(agent string) []byte { return []byte("kctl sealed secrets v1\x00" + agent) }

// KeyFile is the name of an agent's encryption key in its data dir.
const KeyFile = "encryption.key"

// PrivateKey is an agent's encryption key.
type PrivateKey struct{ k hpke.PrivateKey }

// GenerateKey makes a new encryption key.
func GenerateKey() (*PrivateKey, error) {
	k, err := kem().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("sealbox: generate key: %w", err)
	}
	return &PrivateKey{k}, nil
}

// ParsePrivateKey reads a key written by Bytes.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	k, err := kem().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("sealbox: parse key: %w", err)
	}
	return &PrivateKey{k}, nil
}

// Bytes serializes the key.
func (k *PrivateKey) Bytes() []byte {
	b, err := k.k.Bytes()
	if err != nil {
		panic("sealbox: serialize key: " + err.Error()) // generated keys always serialize
	}
	return b
}

// PublicKey returns the serialized public key.
func (k *PrivateKey) PublicKey() []byte { return k.k.PublicKey().Bytes() }

// LoadOrCreateKey reads the key at path, or makes one and writes it there
// (0600) when none exists. created reports which.
func LoadOrCreateKey(path string) (k *PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParsePrivateKey(b)
		return k, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if k, err = GenerateKey(); err != nil {
		return nil, false, err
	}
	if err := atomicfile.WriteFile(path, k.Bytes(), 0o600); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// LoadKey reads the key at path; a missing file is ErrNoKey.
func LoadKey(path string) (*PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoKey
	}
	if err != nil {
		return nil, err
	}
	return ParsePrivateKey(b)
}

// Seal encrypts plaintext to agent's public key.
func Seal(agent string, pub, plaintext []byte) ([]byte, error) {
	pk, err := kem().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("sealbox: public key of %s: %w", agent, err)
	}
	ct, err := hpke.Seal(pk, kdf(), aead(), info(agent), plaintext)
	if err != nil {
		return nil, fmt.Errorf("sealbox: seal to %s: %w", agent, err)
	}
	return ct, nil
}

// Open decrypts what Seal sealed to agent with k.
func (k *PrivateKey) Open(agent string, ciphertext []byte) ([]byte, error) {
	pt, err := hpke.Open(k.k, kdf(), aead(), info(agent), ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: not sealed to this agent's key (%s): was the agent re-enrolled since kctl read its key? run the command again", ErrOpen, agent)
	}
	return pt, nil
}

// Equal reports whether k's public key is pub.
func (k *PrivateKey) Equal(pub []byte) bool { return bytes.Equal(k.PublicKey(), pub) }
