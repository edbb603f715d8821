package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Credentials are a node's (or operator's) loaded certificate, key and
// cluster CA. The certificate and key hot-reload through Update: TLS configs
// made earlier pick the current pair for every new handshake, so a renewal
// applies to new connections without restarting listeners or dialers.
// Credentials are safe for concurrent use.
type Credentials struct {
	caCert *x509.Certificate
	caPool *x509.CertPool
	cur    atomic.Pointer[loadedCert] // never nil after NewCredentials
}

// loadedCert is one immutable certificate generation.
type loadedCert struct {
	tls  tls.Certificate // chain: leaf, CA
	leaf *x509.Certificate
	id   Identity
}

// NewCredentials loads a PEM certificate and key and the PEM CA certificate.
// The certificate must be signed by the CA, match the key and name a valid
// identity of the CA's cluster. An expired certificate loads (its holder
// needs to tell the user to rejoin); peers refuse it at the handshake.
func NewCredentials(certPEM, keyPEM, caPEM []byte) (*Credentials, error) {
	ca, err := ParseCertificate(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	if !ca.IsCA || len(ca.Subject.Organization) != 1 {
		return nil, fmt.Errorf("%w: not a kctl cluster CA certificate", ErrInvalidCA)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c := &Credentials{caCert: ca, caPool: pool}
	lc, err := c.load(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	c.cur.Store(lc)
	return c, nil
}

func (c *Credentials) load(certPEM, keyPEM []byte) (*loadedCert, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
		}
	}
	if err := leaf.CheckSignatureFrom(c.caCert); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, err
	}
	if id.ClusterID != c.caCert.Subject.Organization[0] {
		return nil, fmt.Errorf("%w: certificate for cluster %q, CA for %q", ErrWrongCluster, id.ClusterID, c.caCert.Subject.Organization[0])
	}
	// Present the CA after the leaf so a joiner that pins the CA by digest
	// (PinnedClientTLS) finds it in the handshake.
	pair.Certificate = [][]byte{leaf.Raw, c.caCert.Raw}
	pair.Leaf = leaf
	return &loadedCert{tls: pair, leaf: leaf, id: id}, nil
}

// Update replaces the certificate and key (after a renewal). The new
// certificate must name the same cluster, role and name (the operator role
// may change). Existing connections keep the certificate they presented.
func (c *Credentials) Update(certPEM, keyPEM []byte) error {
	lc, err := c.load(certPEM, keyPEM)
	if err != nil {
		return err
	}
	old := c.cur.Load().id
	if lc.id.ClusterID != old.ClusterID || lc.id.Role != old.Role || lc.id.Name != old.Name {
		return fmt.Errorf("%w: have %s, got %s", ErrIdentityChanged, old, lc.id)
	}
	c.cur.Store(lc)
	return nil
}

// Identity returns the identity the current certificate names.
func (c *Credentials) Identity() Identity { return c.cur.Load().id }

// Leaf returns the current certificate.
func (c *Credentials) Leaf() *x509.Certificate { return c.cur.Load().leaf }

// CAPool returns a pool holding only the cluster CA.
func (c *Credentials) CAPool() *x509.CertPool { return c.caPool }

// CACert returns the cluster CA certificate.
func (c *Credentials) CACert() *x509.Certificate { return c.caCert }

// ClusterID returns the cluster the credentials belong to.
func (c *Credentials) ClusterID() string { return c.caCert.Subject.Organization[0] }

func (c *Credentials) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &c.cur.Load().tls, nil
}

func (c *Credentials) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return &c.cur.Load().tls, nil
}

// ServerTLS returns the TLS 1.3 server config: it presents the current
// certificate and verifies a client certificate against the CA if one is
// given (expired and foreign certificates fail the handshake). Clients
// without a certificate, such as joiners, are let through the handshake: the
// Authorizer accepts them only on Public methods.
func (c *Credentials) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      c.caPool,
		GetCertificate: c.getCertificate,
		// Every connection is a full handshake: no resumed session skips
		// the verification of the client's current certificate.
		SessionTicketsDisabled: true,
	}
}

// ServerTLSForRoles returns a TLS 1.3 server config that requires a client
// certificate from the CA naming one of roles in this cluster, for listeners
// without an Authorizer (the Raft transport: ServerTLSForRoles(RoleController)).
func (c *Credentials) ServerTLSForRoles(roles ...Role) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              c.caPool,
		GetCertificate:         c.getCertificate,
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 {
				return fmt.Errorf("%w: no verified client certificate", ErrUntrusted)
			}
			id, err := IdentityFromCert(cs.VerifiedChains[0][0])
			if err != nil {
				return err
			}
			return c.checkPeer(id, roles)
		},
	}
}

// ClientTLS returns the TLS 1.3 client config: it presents the current
// certificate and verifies that the server's certificate chains to the CA
// and names serverRole in this cluster. It checks the role (OU), not the host
// name, so dialing any IP address or name works.
func (c *Credentials) ClientTLS(serverRole Role) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		InsecureSkipVerify:   true, // replaced by VerifyConnection: chain to the CA + role, no host name
		GetClientCertificate: c.getClientCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf, err := verifyChain(cs.PeerCertificates, c.caPool, time.Now())
			if err != nil {
				return err
			}
			id, err := IdentityFromCert(leaf)
			if err != nil {
				return err
			}
			return c.checkPeer(id, []Role{serverRole})
		},
	}
}

func (c *Credentials) checkPeer(id Identity, roles []Role) error {
	if id.ClusterID != c.ClusterID() {
		return fmt.Errorf("%w: peer %s is in cluster %q, want %q", ErrWrongCluster, id, id.ClusterID, c.ClusterID())
	}
	if !slices.Contains(roles, id.Role) {
		return fmt.Errorf("%w: peer is %s, want %v", ErrWrongRole, id, roles)
	}
	return nil
}

// verifyChain verifies that the presented chain's leaf is a server
// certificate issued by a CA in roots and valid at now, and returns the leaf.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: peer presented no certificate", ErrUntrusted)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return certs[0], nil
}

// PinnedClientTLS returns a TLS 1.3 client config for joining: it presents
// no certificate and trusts the server only if the chain it presents holds a
// CA certificate whose digest is caDigest (from the join token), the leaf is
// a valid controller certificate issued by that CA, and the leaf names that
// CA's cluster. An impostor with another CA fails the handshake. After the
// handshake, PinnedCA extracts the CA certificate from the connection state;
// or the joiner checks the CA the Join RPC returns with VerifyCADigest.
func PinnedClientTLS(caDigest string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection: pinned CA digest + role
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := PinnedCA(cs, caDigest)
			return err
		},
	}
}

// PinnedCA verifies a connection state as PinnedClientTLS does and returns
// the pinned CA certificate.
func PinnedCA(cs tls.ConnectionState, caDigest string) (*x509.Certificate, error) {
	caDigest = strings.ToLower(caDigest)
	var ca *x509.Certificate
	for _, c := range cs.PeerCertificates {
		if c.IsCA && Digest(c.Raw) == caDigest {
			ca = c
			break
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("%w: the server presented no CA certificate with digest %s (wrong cluster, or an impostor)", ErrCADigestMismatch, caDigest)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	leaf, err := verifyChain(cs.PeerCertificates, roots, time.Now())
	if err != nil {
		return nil, err
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, err
	}
	if len(ca.Subject.Organization) != 1 || id.ClusterID != ca.Subject.Organization[0] {
		return nil, fmt.Errorf("%w: server %s is not in the pinned CA's cluster", ErrWrongCluster, id)
	}
	if id.Role != RoleController {
		return nil, fmt.Errorf("%w: server is %s, want a controller", ErrWrongRole, id)
	}
	return ca, nil
}

// RenewalTime returns when a certificate should be renewed: a point between
// 50% and 80% of its validity, chosen by the certificate's own bytes so it is
// stable across restarts and differs between certificates (no thundering
// herd of renewals).
func RenewalTime(leaf *x509.Certificate) time.Time {
	sum := sha256.Sum256(leaf.Raw)
	frac := 0.5 + 0.3*float64(binary.BigEndian.Uint64(sum[:8])>>11)/float64(1<<53)
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(time.Duration(frac * float64(life)))
}

// NeedsRenewal reports whether leaf has reached its RenewalTime at now.
func NeedsRenewal(leaf *x509.Certificate, now time.Time) bool {
	return !now.Before(RenewalTime(leaf))
}
