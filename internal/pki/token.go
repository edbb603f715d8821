package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
)

// tokenPrefix names the token format's version.
const tokenPrefix = "KCTL1"

// secretBytes is the entropy of a token secret (160 bits).
const secretBytes = 20

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Token is a join token: "KCTL1-<ca digest>-<secret>". The CA digest (64
// lowercase hex characters, SHA-256 of the CA certificate) lets the joiner
// pin the CA; the secret (32 lowercase base32 characters, 160 random bits)
// authorizes the join. Only HashSecret(secret) is stored.
type Token struct {
	CADigest string
	Secret   string
}

// NewToken makes a token with a fresh random secret for a CA.
func NewToken(ca *CA) (Token, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return Token{}, fmt.Errorf("pki: token secret: %w", err)
	}
	return Token{CADigest: ca.Digest(), Secret: secretEncoding.EncodeToString(b)}, nil
}

// String returns the token in its printed form.
func (t Token) String() string {
	return tokenPrefix + "-" + t.CADigest + "-" + t.Secret
}

// ParseToken parses a printed token, ignoring surrounding white space. Errors
// wrap ErrMalformedToken, say what is wrong and never repeat the secret.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("%w: want %s-<ca digest>-<secret>, got %d dash-separated parts", ErrMalformedToken, tokenPrefix, len(parts))
	}
	if parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: want prefix %s", ErrMalformedToken, tokenPrefix)
	}
	digest := parts[1]
	if len(digest) != 2*sha256.Size || strings.Trim(digest, "0123456789abcdef") != "" {
		return Token{}, fmt.Errorf("%w: CA digest must be %d lowercase hex characters", ErrMalformedToken, 2*sha256.Size)
	}
	secret := parts[2]
	if b, err := secretEncoding.DecodeString(secret); err != nil || len(b) != secretBytes || len(secret) != secretEncoding.EncodedLen(secretBytes) {
		return Token{}, fmt.Errorf("%w: secret must be %d base32 characters", ErrMalformedToken, secretEncoding.EncodedLen(secretBytes))
	}
	return Token{CADigest: digest, Secret: secret}, nil
}

// HashSecret returns the SHA-256 of a token secret, what is stored in Raft.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// SecretMatches reports whether secret hashes to hash, in constant time.
func SecretMatches(hash []byte, secret string) bool {
	return subtle.ConstantTimeCompare(hash, HashSecret(secret)) == 1
}
