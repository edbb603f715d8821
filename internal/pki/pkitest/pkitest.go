// Package pkitest mints cluster CAs and credentials for tests: valid ones
// for any role, name and operator role, expired ones, and ones from a foreign
// CA with the same cluster ID (an impostor), so other packages' tests (the
// controller's mutual-TLS negative matrix) can build every case.
package pkitest

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/pki"
)

// TestCA is a cluster CA for tests. Its methods fail the test on error.
type TestCA struct {
	*pki.CA
	ClusterID string

	t           testing.TB
	foreignOnce sync.Once
	foreign     *TestCA
}

// NewTestCA makes a CA for a fresh random cluster ID.
func NewTestCA(t testing.TB) *TestCA {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pkitest: cluster ID: %v", err)
	}
	return newTestCA(t, "test-"+hex.EncodeToString(b))
}

func newTestCA(t testing.TB, clusterID string) *TestCA {
	t.Helper()
	ca, err := pki.NewCA(clusterID)
	if err != nil {
		t.Fatalf("pkitest: NewCA(%q): %v", clusterID, err)
	}
	return &TestCA{CA: ca, ClusterID: clusterID, t: t}
}

// Identity returns an identity in this CA's cluster. opRole is ignored
// unless role is pki.RoleOperator.
func (c *TestCA) Identity(role pki.Role, name string, opRole pki.OperatorRole) pki.Identity {
	id := pki.Identity{ClusterID: c.ClusterID, Role: role, Name: name}
	if role == pki.RoleOperator {
		id.OperatorRole = opRole
	}
	return id
}

// Pair makes a fresh key and a certificate for id valid from now-5m to
// now+validity (0: the role's default), PEM-encoded.
func (c *TestCA) Pair(id pki.Identity, validity time.Duration) (certPEM, keyPEM []byte) {
	c.t.Helper()
	keyPEM, csrPEM := c.keyAndCSR(id)
	certPEM, err := c.Sign(csrPEM, id, validity)
	if err != nil {
		c.t.Fatalf("pkitest: Sign(%s): %v", id, err)
	}
	return certPEM, keyPEM
}

// PairAt is Pair with an explicit validity window.
func (c *TestCA) PairAt(id pki.Identity, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	c.t.Helper()
	keyPEM, csrPEM := c.keyAndCSR(id)
	certPEM, err := c.SignAt(csrPEM, id, notBefore, notAfter)
	if err != nil {
		c.t.Fatalf("pkitest: SignAt(%s): %v", id, err)
	}
	return certPEM, keyPEM
}

func (c *TestCA) keyAndCSR(id pki.Identity) (keyPEM, csrPEM []byte) {
	c.t.Helper()
	keyPEM, err := pki.NewKey()
	if err != nil {
		c.t.Fatalf("pkitest: NewKey: %v", err)
	}
	csrPEM, err = pki.NewCSR(keyPEM, id)
	if err != nil {
		c.t.Fatalf("pkitest: NewCSR(%s): %v", id, err)
	}
	return keyPEM, csrPEM
}

// Load makes Credentials from a PEM pair issued by this CA.
func (c *TestCA) Load(certPEM, keyPEM []byte) *pki.Credentials {
	c.t.Helper()
	cr, err := pki.NewCredentials(certPEM, keyPEM, c.CertPEM)
	if err != nil {
		c.t.Fatalf("pkitest: NewCredentials: %v", err)
	}
	return cr
}

// Credentials returns credentials for id with the role's default validity.
func (c *TestCA) Credentials(id pki.Identity) *pki.Credentials {
	c.t.Helper()
	return c.Load(c.Pair(id, 0))
}

// Controller returns credentials for a controller.
func (c *TestCA) Controller(name string) *pki.Credentials {
	c.t.Helper()
	return c.Credentials(c.Identity(pki.RoleController, name, ""))
}

// Agent returns credentials for an agent.
func (c *TestCA) Agent(name string) *pki.Credentials {
	c.t.Helper()
	return c.Credentials(c.Identity(pki.RoleAgent, name, ""))
}

// Operator returns credentials for an operator with an operator role.
func (c *TestCA) Operator(name string, role pki.OperatorRole) *pki.Credentials {
	c.t.Helper()
	return c.Credentials(c.Identity(pki.RoleOperator, name, role))
}

// Expired returns credentials for id whose certificate expired an hour ago.
func (c *TestCA) Expired(id pki.Identity) *pki.Credentials {
	c.t.Helper()
	now := time.Now()
	return c.Load(c.PairAt(id, now.Add(-2*time.Hour), now.Add(-time.Hour)))
}

// ForeignCA returns another CA with the same cluster ID (made once per
// TestCA): an impostor whose certificates name valid identities but do not
// chain to this CA.
func (c *TestCA) ForeignCA() *TestCA {
	c.foreignOnce.Do(func() { c.foreign = newTestCA(c.t, c.ClusterID) })
	return c.foreign
}

// Foreign returns credentials for id issued by ForeignCA.
func (c *TestCA) Foreign(id pki.Identity) *pki.Credentials {
	c.t.Helper()
	return c.ForeignCA().Credentials(id)
}

// NoCertClientTLS returns a client TLS config that verifies the server is a
// controller of this CA (pinned by digest) but presents no client certificate.
func (c *TestCA) NoCertClientTLS() *tls.Config {
	return pki.PinnedClientTLS(c.Digest())
}

// Token returns a fresh join token for this CA and the hash of its secret.
func (c *TestCA) Token() (pki.Token, []byte) {
	c.t.Helper()
	tok, err := pki.NewToken(c.CA)
	if err != nil {
		c.t.Fatalf("pkitest: NewToken: %v", err)
	}
	return tok, pki.HashSecret(tok.Secret)
}
