package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/kctl-dev/kctl/internal/sealbox"
)

// Validity defaults. Sign takes the validity as a parameter; a zero or
// negative validity means DefaultValidity(role).
const (
	// CAValidity is how long a cluster CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// DefaultNodeValidity is the default for controller and agent certificates.
	DefaultNodeValidity = 30 * 24 * time.Hour
	// DefaultOperatorValidity is the default for operator certificates.
	DefaultOperatorValidity = 90 * 24 * time.Hour
	// MinValidity is the shortest validity Sign accepts; shorter requests
	// are raised to it (renewal at 50–80% needs some room).
	MinValidity = time.Minute
	// clockSkew backdates NotBefore so a peer whose clock is a little behind
	// accepts a fresh certificate.
	clockSkew = 5 * time.Minute
)

// DefaultValidity returns the default certificate validity for a role.
func DefaultValidity(r Role) time.Duration {
	if r == RoleOperator {
		return DefaultOperatorValidity
	}
	return DefaultNodeValidity
}

// CA is a cluster's certificate authority: an ECDSA P-256 root valid for 10
// years, created at `controller run --init`; its certificate and key are
// replicated in Raft so any leader can sign.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte

	key       *ecdsa.PrivateKey
	clusterID string
}

// NewCA makes a new CA for a cluster. The CA certificate's subject is
// CN "kctl cluster CA", O = clusterID.
func NewCA(clusterID string) (*CA, error) {
	if clusterID == "" {
		return nil, fmt.Errorf("%w: empty cluster ID", ErrInvalidCA)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kctl cluster CA", Organization: []string{clusterID}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	return &CA{Cert: c, CertPEM: encodeCert(der), key: k, clusterID: clusterID}, nil
}

// LoadCA loads a CA from its PEM certificate and key (as stored in Raft).
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	c, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	if !c.IsCA || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] == "" {
		return nil, fmt.Errorf("%w: not a kctl cluster CA certificate", ErrInvalidCA)
	}
	k, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	if !k.PublicKey.Equal(c.PublicKey) {
		return nil, fmt.Errorf("%w: key does not match certificate", ErrInvalidCA)
	}
	return &CA{Cert: c, CertPEM: encodeCert(c.Raw), key: k, clusterID: c.Subject.Organization[0]}, nil
}

// KeyPEM returns the CA's private key, PEM-encoded, for storage in Raft.
func (ca *CA) KeyPEM() ([]byte, error) { return marshalKey(ca.key) }

// CertifyEncryptionKey signs the statement that pub is agent's encryption
// key (internal/sealbox.Certify); kctl verifies it before sealing secrets.
func (ca *CA) CertifyEncryptionKey(agent string, pub []byte) ([]byte, error) {
	return sealbox.Certify(ca.key, agent, pub)
}

// ClusterID returns the cluster the CA belongs to (its O).
func (ca *CA) ClusterID() string { return ca.clusterID }

// Digest returns the SHA-256 digest of the CA certificate, what join tokens pin.
func (ca *CA) Digest() string { return Digest(ca.Cert.Raw) }

// Digest returns the SHA-256 of a CA certificate's DER, in lowercase hex.
func Digest(caCertDER []byte) string {
	sum := sha256.Sum256(caCertDER)
	return hex.EncodeToString(sum[:])
}

// VerifyCADigest parses a PEM CA certificate (or a trust bundle, during a
// CA rotation) and checks that its digest (one of its CAs') is caDigest (a
// joiner does this with the CA certificate the Join RPC returns).
func VerifyCADigest(caPEM []byte, caDigest string) (*x509.Certificate, error) {
	tb, err := ParseTrustBundle(caPEM)
	if err != nil {
		return nil, err
	}
	for _, c := range tb.CAs {
		if Digest(c.Raw) == strings.ToLower(caDigest) {
			return c, nil
		}
	}
	return nil, ErrCADigestMismatch
}

// Sign issues a certificate for id from a CSR. It ignores the CSR's subject
// and uses id (whose ClusterID, if empty, is the CA's). validity <= 0 means
// DefaultValidity(id.Role); the certificate never outlives the CA.
func (ca *CA) Sign(csrPEM []byte, id Identity, validity time.Duration) (certPEM []byte, err error) {
	return ca.SignWithSANs(csrPEM, id, validity, nil, nil)
}

// SignWithSANs is Sign with DNS and IP subject alternative names, for
// controller certificates. Clients verify controllers by role, not by host
// name, so the SANs are informational (and let standard TLS tools connect).
func (ca *CA) SignWithSANs(csrPEM []byte, id Identity, validity time.Duration, dnsNames []string, ips []net.IP) ([]byte, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = DefaultValidity(id.Role)
	}
	now := time.Now()
	der, err := ca.sign(csr.PublicKey.(*ecdsa.PublicKey), id, now.Add(-clockSkew), now.Add(max(validity, MinValidity)), dnsNames, ips)
	if err != nil {
		return nil, err
	}
	return encodeCert(der), nil
}

// sign is the one place certificates are made.
func (ca *CA) sign(pub *ecdsa.PublicKey, id Identity, notBefore, notAfter time.Time, dnsNames []string, ips []net.IP) ([]byte, error) {
	if id.ClusterID == "" {
		id.ClusterID = ca.clusterID
	}
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if id.ClusterID != ca.clusterID {
		return nil, fmt.Errorf("%w: identity is for cluster %q, CA for %q", ErrWrongCluster, id.ClusterID, ca.clusterID)
	}
	if id.Role != RoleController && (len(dnsNames) > 0 || len(ips) > 0) {
		return nil, fmt.Errorf("%w: only controller certificates carry SANs", ErrInvalidIdentity)
	}
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	eku := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if id.Role == RoleController {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               id.Subject(),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate for %s: %w", id, err)
	}
	return der, nil
}

// SignAt issues a certificate with an explicit validity window. It exists for
// tests (expired and not-yet-valid certificates); production code uses Sign.
func (ca *CA) SignAt(csrPEM []byte, id Identity, notBefore, notAfter time.Time) ([]byte, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	der, err := ca.sign(csr.PublicKey.(*ecdsa.PublicKey), id, notBefore, notAfter, nil, nil)
	if err != nil {
		return nil, err
	}
	return encodeCert(der), nil
}

// newSerial returns a random 128-bit positive serial number.
func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// Serial returns a certificate's serial number in lowercase hex, the form
// passed to Authorizer.Revoked and stored in revocation lists.
func Serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }
