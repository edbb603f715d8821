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
	trust atomic.Pointer[TrustBundle] // never nil after NewCredentials
	cur   atomic.Pointer[loadedCert]  // never nil after NewCredentials
	// prev is the certificate of the old CA after a renewal from the new
	// one, kept while the bundle trusts the old CA (ClientTLSPreferOld).
	prev atomic.Pointer[loadedCert]
}

// loadedCert is one immutable certificate generation.
type loadedCert struct {
	tls  tls.Certificate // chain: leaf, its CA, the other trusted CAs, cross-signed certificates
	leaf *x509.Certificate
	id   Identity
}

// NewCredentials loads a PEM certificate and key and the PEM CA certificate
// (or a trust bundle: the current CA first, then, during a CA rotation, the
// other trusted CA and the cross-signed certificate).
// The certificate must be signed by a CA of the bundle, match the key and name a valid
// identity of the CA's cluster. An expired certificate loads (its holder
// needs to tell the user to rejoin); peers refuse it at the handshake.
func NewCredentials(certPEM, keyPEM, caPEM []byte) (*Credentials, error) {
	tb, err := ParseTrustBundle(caPEM)
	if err != nil {
		return nil, err
	}
	c := &Credentials{}
	lc, err := load(certPEM, keyPEM, tb)
	if err != nil {
		return nil, err
	}
	c.trust.Store(tb)
	c.cur.Store(lc)
	return c, nil
}

func load(certPEM, keyPEM []byte, tb *TrustBundle) (*loadedCert, error) {
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
	if err := leaf.CheckSignatureFrom(tb.CA); err != nil && tb.issuer(leaf) == nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, err
	}
	if cluster := tb.CA.Subject.Organization[0]; id.ClusterID != cluster {
		return nil, fmt.Errorf("%w: certificate for cluster %q, CA for %q", ErrWrongCluster, id.ClusterID, cluster)
	}
	pair.Certificate, pair.Leaf = chainFor(leaf, tb), leaf
	return &loadedCert{tls: pair, leaf: leaf, id: id}, nil
}

// chainFor is the chain presented with leaf: the leaf, the CA that signed
// it (so a joiner that pins the CA by digest finds it in the handshake),
// the other trusted CAs and the cross-signed certificates (so a peer that
// trusts only the old CA during a rotation accepts a new certificate, and a
// token made before the rotation still pins).
func chainFor(leaf *x509.Certificate, tb *TrustBundle) [][]byte {
	chain := [][]byte{leaf.Raw}
	iss := tb.issuer(leaf)
	if iss != nil {
		chain = append(chain, iss.Raw)
	}
	for _, ca := range tb.CAs {
		if ca != iss {
			chain = append(chain, ca.Raw)
		}
	}
	for _, x := range tb.Cross {
		chain = append(chain, x.Raw)
	}
	return chain
}

// Update replaces the certificate and key (after a renewal). The new
// certificate must name the same cluster, role and name (the operator role
// may change). Existing connections keep the certificate they presented.
func (c *Credentials) Update(certPEM, keyPEM []byte) error {
	return c.UpdateTrust(certPEM, keyPEM, nil)
}

// UpdateTrust is Update that also replaces the trust bundle (a renewal
// during or after a CA rotation); a nil bundle keeps the current one.
func (c *Credentials) UpdateTrust(certPEM, keyPEM, bundlePEM []byte) error {
	tb := c.trust.Load()
	if len(bundlePEM) > 0 {
		var err error
		if tb, err = ParseTrustBundle(bundlePEM); err != nil {
			return err
		}
		if tb.CA.Subject.Organization[0] != c.ClusterID() {
			return fmt.Errorf("%w: a trust bundle of cluster %q", ErrWrongCluster, tb.CA.Subject.Organization[0])
		}
	}
	lc, err := load(certPEM, keyPEM, tb)
	if err != nil {
		return err
	}
	oldLC := c.cur.Load()
	old := oldLC.id
	if lc.id.ClusterID != old.ClusterID || lc.id.Role != old.Role || lc.id.Name != old.Name {
		return fmt.Errorf("%w: have %s, got %s", ErrIdentityChanged, old, lc.id)
	}
	if oi := tb.issuer(oldLC.leaf); oi != nil && oi != tb.issuer(lc.leaf) {
		keep := *oldLC
		keep.tls.Certificate = chainFor(keep.leaf, tb)
		c.prev.Store(&keep) // a renewal from a new CA: keep the old CA's
	} else if p := c.prev.Load(); p != nil && tb.issuer(p.leaf) == nil {
		c.prev.Store(nil)
	}
	c.trust.Store(tb)
	c.cur.Store(lc)
	return nil
}

// SetTrust replaces the trust bundle, keeping the certificate (a controller
// following the cluster record through a CA rotation). TLS configs made
// earlier use the new bundle for every new handshake.
func (c *Credentials) SetTrust(bundlePEM []byte) error {
	tb, err := ParseTrustBundle(bundlePEM)
	if err != nil {
		return err
	}
	if tb.CA.Subject.Organization[0] != c.ClusterID() {
		return fmt.Errorf("%w: a trust bundle of cluster %q", ErrWrongCluster, tb.CA.Subject.Organization[0])
	}
	lc := *c.cur.Load()
	lc.tls.Certificate = chainFor(lc.leaf, tb)
	if p := c.prev.Load(); p != nil && tb.issuer(p.leaf) == nil {
		c.prev.Store(nil) // the old CA is retired
	}
	c.trust.Store(tb)
	c.cur.Store(&lc)
	return nil
}

// Trust returns the current trust bundle.
func (c *Credentials) Trust() *TrustBundle { return c.trust.Load() }

// TrustID returns the current trust bundle's TrustID.
func (c *Credentials) TrustID() string { return c.trust.Load().ID }

// OnCurrentCA reports whether the certificate was issued by the bundle's
// current (first) CA.
func (c *Credentials) OnCurrentCA() bool {
	return c.cur.Load().leaf.CheckSignatureFrom(c.trust.Load().CA) == nil
}

// Identity returns the identity the current certificate names.
func (c *Credentials) Identity() Identity { return c.cur.Load().id }

// Leaf returns the current certificate.
func (c *Credentials) Leaf() *x509.Certificate { return c.cur.Load().leaf }

// CAPool returns a pool of the trusted CAs (one, except during a CA
// rotation). It is a snapshot: TLS configs from this package follow changes.
func (c *Credentials) CAPool() *x509.CertPool { return c.trust.Load().Pool }

// CACert returns the current cluster CA certificate.
func (c *Credentials) CACert() *x509.Certificate { return c.trust.Load().CA }

// CACerts returns every trusted CA certificate, the current one first.
func (c *Credentials) CACerts() []*x509.Certificate { return c.trust.Load().CAs }

// ClusterID returns the cluster the credentials belong to.
func (c *Credentials) ClusterID() string { return c.trust.Load().CA.Subject.Organization[0] }

// withCurrentPool makes every handshake of cfg use the current CA pool as
// ClientCAs.
func (c *Credentials) withCurrentPool(cfg *tls.Config) *tls.Config {
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		x := cfg.Clone()
		x.GetConfigForClient = nil
		x.ClientCAs = c.CAPool()
		return x, nil
	}
	cfg.ClientCAs = c.CAPool()
	return cfg
}

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
	return c.withCurrentPool(&tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		GetCertificate: c.getCertificate,
		// Every connection is a full handshake: no resumed session skips
		// the verification of the client's current certificate.
		SessionTicketsDisabled: true,
	})
}

// ServerTLSForRoles returns a TLS 1.3 server config that requires a client
// certificate from the CA naming one of roles in this cluster, for listeners
// without an Authorizer (the Raft transport: ServerTLSForRoles(RoleController)).
func (c *Credentials) ServerTLSForRoles(roles ...Role) *tls.Config {
	return c.withCurrentPool(&tls.Config{
		MinVersion:             tls.VersionTLS13,
		ClientAuth:             tls.RequireAndVerifyClientCert,
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
	})
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
			tb := c.trust.Load()
			leaf, err := verifyChain(cs.PeerCertificates, tb.Pool, time.Now())
			if err != nil {
				if tb.rotatedPeer(cs.PeerCertificates) {
					return fmt.Errorf("%w: %w: %s", ErrUntrusted, ErrCARotated, RotatedHint)
				}
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

// ClientTLSPreferOld is ClientTLS that, during a CA rotation, presents the
// certificate of the old CA (while it is valid and still trusted) rather
// than the new one, so a server that has not learnt of the rotation yet
// accepts it: Go's verifier cannot take the cross-signed path on the server
// side (the CAs are MaxPathLen 0). The Raft transport uses it, so a
// controller that lags behind the rotation still gets the log that tells
// it. Once the old CA is retired it presents the current certificate.
func (c *Credentials) ClientTLSPreferOld(serverRole Role) *tls.Config {
	cfg := c.ClientTLS(serverRole)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if p := c.prev.Load(); p != nil && time.Now().Before(p.leaf.NotAfter) {
			return &p.tls, nil
		}
		return &c.cur.Load().tls, nil
	}
	return cfg
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
	if err != nil && verifyCross(certs[0], certs[1:], roots, now, x509.ExtKeyUsageServerAuth) != nil {
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
		return nil, fmt.Errorf("%w: the server presented no CA certificate with digest %s (wrong cluster, an impostor, or a token made before a CA rotation that has completed: create a new token)", ErrCADigestMismatch, caDigest)
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
