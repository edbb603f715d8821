package sealbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// ErrUnwrap is returned when a wrapped value does not open under the key
// (wrong key, or damaged).
var ErrUnwrap = errors.New("sealbox: cannot unwrap: wrong key or damaged data")

// SymmetricKeySize is the size of data keys and key-encryption keys.
const SymmetricKeySize = 32

// NewSymmetricKey returns a random AES-256 key.
func NewSymmetricKey() []byte {
	k := make([]byte, SymmetricKeySize)
	rand.Read(k)
	return k
}

func gcm(key []byte) (cipher.AEAD, error) {
	if len(key) != SymmetricKeySize {
		return nil, fmt.Errorf("sealbox: key is %d bytes, want %d", len(key), SymmetricKeySize)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Wrap encrypts plaintext under key (AES-256-GCM, random nonce first);
// aad names what it is, so one wrapped value cannot stand for another.
func Wrap(key, plaintext, aad []byte) ([]byte, error) {
	g, err := gcm(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(plaintext)+g.Overhead())
	rand.Read(nonce)
	return g.Seal(nonce, nonce, plaintext, aad), nil
}

// Unwrap decrypts what Wrap made with the same key and aad.
func Unwrap(key, wrapped, aad []byte) ([]byte, error) {
	g, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < g.NonceSize()+g.Overhead() {
		return nil, ErrUnwrap
	}
	pt, err := g.Open(nil, wrapped[:g.NonceSize()], wrapped[g.NonceSize():], aad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return pt, nil
}
