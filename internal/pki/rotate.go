package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrCARotated: the peer's CA is another CA of the same cluster, the one
// that replaced the CA these credentials trust (docs/pki.md, CA rotation).
var ErrCARotated = errors.New("the peer is from another CA of this cluster: the cluster's CA was rotated and these credentials come from the retired CA")

// RotatedHint is the advice that goes with ErrCARotated.
const RotatedHint = "enrol again with a new token (an admin runs `kctl token create ...`, then `kctl login` or `agent join`)"

// CrossSign certifies newCA's key with oldCA: the cross-signed certificate
// has newCA's subject, key and key ID, issued by oldCA, so a peer trusting
// only oldCA accepts certificates newCA signs when the holder presents it
// (see verifyChain). It expires with oldCA.
func CrossSign(oldCA, newCA *CA) ([]byte, error) {
	if oldCA.clusterID != newCA.clusterID {
		return nil, ErrWrongCluster
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := *newCA.Cert
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-clockSkew)
	tmpl.NotAfter = oldCA.Cert.NotAfter
	tmpl.AuthorityKeyId = nil
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, oldCA.Cert, newCA.key.Public(), oldCA.key)
	if err != nil {
		return nil, fmt.Errorf("pki: cross-sign: %w", err)
	}
	return encodeCert(der), nil
}

// TrustBundle is a parsed CA bundle (PEM, as a ca.pem file or a credentials
// file's ca holds it): the current CA first, any other trusted CA, and any
// cross-signed certificates (CA certificates not self-signed), which are
// presented but not trusted as roots.
type TrustBundle struct {
	CA    *x509.Certificate   // the current CA
	CAs   []*x509.Certificate // every trusted CA, CA first
	Cross []*x509.Certificate
	Pool  *x509.CertPool
	ID    string // TrustID
}

// ParseTrustBundle parses a PEM bundle of one cluster's CA certificates.
func ParseTrustBundle(bundlePEM []byte) (*TrustBundle, error) {
	tb := &TrustBundle{Pool: x509.NewCertPool()}
	rest := bundlePEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
		}
		if !c.IsCA || len(c.Subject.Organization) != 1 {
			return nil, fmt.Errorf("%w: not a kctl cluster CA certificate", ErrInvalidCA)
		}
		if c.CheckSignatureFrom(c) != nil {
			tb.Cross = append(tb.Cross, c)
			continue
		}
		if tb.CA != nil && c.Subject.Organization[0] != tb.CA.Subject.Organization[0] {
			return nil, fmt.Errorf("%w: CA certificates of two clusters", ErrInvalidCA)
		}
		if tb.CA == nil {
			tb.CA = c
		}
		tb.CAs = append(tb.CAs, c)
		tb.Pool.AddCert(c)
	}
	if tb.CA == nil {
		return nil, fmt.Errorf("%w: no CA certificate", ErrInvalidCA)
	}
	tb.ID = trustID(tb.CAs)
	return tb, nil
}

// TrustID identifies a set of trusted CAs: the first 16 hex digits of
// SHA-256 over their sorted digests. Controllers announce the cluster's; a
// holder whose own differs renews its certificate (a CA rotation).
func TrustID(caCertsDER ...[]byte) string {
	ds := make([]string, 0, len(caCertsDER))
	for _, d := range caCertsDER {
		ds = append(ds, Digest(d))
	}
	slices.Sort(ds)
	h := sha256.Sum256([]byte(strings.Join(ds, ",")))
	return hex.EncodeToString(h[:8])
}

func trustID(cas []*x509.Certificate) string {
	ders := make([][]byte, 0, len(cas))
	for _, c := range cas {
		ders = append(ders, c.Raw)
	}
	return TrustID(ders...)
}

// issuer returns the trusted CA that signed leaf, or nil.
func (tb *TrustBundle) issuer(leaf *x509.Certificate) *x509.Certificate {
	for _, ca := range tb.CAs {
		if leaf.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// verifyCross verifies leaf through a cross-signed certificate among
// presented: one that chains to roots directly and signed leaf. (Go's
// verifier refuses that path: the CAs are MaxPathLen 0.)
func verifyCross(leaf *x509.Certificate, presented []*x509.Certificate, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) error {
	for _, x := range presented {
		if !x.IsCA || x.CheckSignatureFrom(x) == nil {
			continue
		}
		if _, err := x.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			continue
		}
		anchor := x509.NewCertPool()
		anchor.AddCert(x)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: anchor, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err == nil {
			return nil
		}
	}
	return errors.New("no cross-signed path")
}

// rotatedPeer reports whether presented holds a self-signed CA of cluster
// that is not in roots' bundle: the cluster rotated to a CA tb does not know.
func (tb *TrustBundle) rotatedPeer(presented []*x509.Certificate) bool {
	for _, c := range presented {
		if c.IsCA && len(c.Subject.Organization) == 1 && c.Subject.Organization[0] == tb.CA.Subject.Organization[0] &&
			!slices.ContainsFunc(tb.CAs, func(t *x509.Certificate) bool { return t.Equal(c) }) {
			return true
		}
	}
	return false
}
