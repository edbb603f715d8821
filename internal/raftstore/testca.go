package raftstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"
)

// TestCA is a throwaway certificate authority for tests of raft over mutual
// TLS. It issues certificates whose Subject names the node (CN) and its role
// (OU), like the cluster PKI does. Not for production use.
type TestCA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	Pool *x509.CertPool
}

// NewTestCA creates a CA valid for a day.
func NewTestCA(t testing.TB) *TestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("NewTestCA: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "kctl test CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("NewTestCA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("NewTestCA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &TestCA{Cert: cert, Key: key, Pool: pool}
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("serial: %v", err)
	}
	return n
}

// Issue returns a certificate for name with the given role (OU), usable as
// both TLS server and client, valid for 127.0.0.1, ::1 and localhost, from
// notBefore-1m for validity (default one hour when validity is 0).
func (ca *TestCA) Issue(t testing.TB, name, role string, validity time.Duration) tls.Certificate {
	t.Helper()
	if validity == 0 {
		validity = time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("Issue(%s): %v", name, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{role}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost", name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("Issue(%s): %v", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("Issue(%s): %v", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// ServerTLS returns a raft server config presenting cert and trusting ca.
func (ca *TestCA) ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
		ClientCAs:      ca.Pool,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		MinVersion:     tls.VersionTLS13,
	}
}

// ClientTLS returns a raft client config presenting cert and trusting ca.
func (ca *TestCA) ClientTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		RootCAs:              ca.Pool,
		MinVersion:           tls.VersionTLS13,
	}
}

// RequireRole returns a Config.VerifyPeer func accepting certificates whose
// OU includes role.
func RequireRole(role string) func(*x509.Certificate) error {
	return func(c *x509.Certificate) error {
		if !slices.Contains(c.Subject.OrganizationalUnit, role) {
			return fmt.Errorf("certificate %q has role %v, want %s", c.Subject.CommonName, c.Subject.OrganizationalUnit, role)
		}
		return nil
	}
}
