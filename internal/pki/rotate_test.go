package pki_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/pki"
)

// rotationCreds issues id a certificate from ca and loads it with bundle.
func rotationCreds(t *testing.T, ca *pki.CA, id pki.Identity, bundle ...[]byte) *pki.Credentials {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Sign(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.NewCredentials(cert, key, bytes.Join(bundle, nil))
	if err != nil {
		t.Fatalf("NewCredentials(%s) = %v", id, err)
	}
	return c
}

// handshake runs a TLS handshake between the two configs over loopback and
// returns the client's error, else the server's.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		s := tls.Server(conn, server)
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		err = s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{1}) // the client's certificate is checked by now
		}
		srvErr <- err
		s.Close()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(conn, client)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	cerr := c.Handshake()
	if cerr == nil {
		_, cerr = c.Read(make([]byte, 1))
	}
	c.Close()
	serr := <-srvErr
	if cerr != nil && serr == nil {
		return cerr
	}
	return errors.Join(cerr, serr)
}

// During a CA rotation a client that trusts only the old CA accepts a
// controller whose certificate is from the new CA when the controller
// presents the cross-signed certificate (and only then); a token pinning
// the old CA still joins; after the rotation the old-CA client is told its
// CA was rotated.
func TestCARotation_CrossSignedTrust(t *testing.T) {
	oldCA, err := pki.NewCA("cl-1")
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := pki.NewCA("cl-1")
	if err != nil {
		t.Fatal(err)
	}
	cross, err := pki.CrossSign(oldCA, newCA)
	if err != nil {
		t.Fatal(err)
	}
	ctl := pki.Identity{ClusterID: "cl-1", Role: pki.RoleController, Name: "c1"}
	op := pki.Identity{ClusterID: "cl-1", Role: pki.RoleOperator, Name: "alice", OperatorRole: pki.OperatorAdmin}

	server := rotationCreds(t, newCA, ctl, newCA.CertPEM, oldCA.CertPEM, cross)
	srvTLS := server.ServerTLS() // made once: it follows SetTrust
	oldClient := rotationCreds(t, oldCA, op, oldCA.CertPEM)
	newClient := rotationCreds(t, newCA, op, newCA.CertPEM, oldCA.CertPEM, cross)
	if got := len(server.CACerts()); got != 2 {
		t.Fatalf("the rotation bundle holds %d CAs, want 2 (the cross-signed certificate is no root)", got)
	}
	if err := handshake(t, srvTLS, oldClient.ClientTLS(pki.RoleController)); err != nil {
		t.Errorf("old-CA client to a new-CA controller during the rotation: %v", err)
	}
	if err := handshake(t, srvTLS, newClient.ClientTLS(pki.RoleController)); err != nil {
		t.Errorf("new-CA client during the rotation: %v", err)
	}
	if err := handshake(t, srvTLS, pki.PinnedClientTLS(oldCA.Digest())); err != nil {
		t.Errorf("a pre-rotation token pinning the old CA during the rotation: %v", err)
	}
	if err := handshake(t, srvTLS, pki.PinnedClientTLS(newCA.Digest())); err != nil {
		t.Errorf("a token pinning the new CA: %v", err)
	}
	// Without the cross-signed certificate the old-CA client refuses.
	noCross := rotationCreds(t, newCA, ctl, newCA.CertPEM, oldCA.CertPEM)
	if err := handshake(t, noCross.ServerTLS(), oldClient.ClientTLS(pki.RoleController)); err == nil {
		t.Error("old-CA client accepted a new-CA controller without the cross-signed certificate")
	}
	// A cross-signed certificate from another CA proves nothing.
	otherCA, _ := pki.NewCA("cl-1")
	forged, _ := pki.CrossSign(otherCA, newCA)
	forgedSrv := rotationCreds(t, newCA, ctl, newCA.CertPEM, forged)
	if err := handshake(t, forgedSrv.ServerTLS(), oldClient.ClientTLS(pki.RoleController)); err == nil {
		t.Error("old-CA client accepted a cross-signed certificate from another CA")
	}
	// After the rotation: the controller trusts only the new CA.
	if err := server.SetTrust(newCA.CertPEM); err != nil {
		t.Fatal(err)
	}
	err = handshake(t, srvTLS, oldClient.ClientTLS(pki.RoleController))
	if !errors.Is(err, pki.ErrCARotated) {
		t.Errorf("old-CA client after the rotation = %v, want ErrCARotated", err)
	}
	if err := handshake(t, srvTLS, pki.PinnedClientTLS(oldCA.Digest())); !errors.Is(err, pki.ErrCADigestMismatch) {
		t.Errorf("a pre-rotation token after the rotation = %v, want ErrCADigestMismatch", err)
	}
	if err := handshake(t, srvTLS, newClient.ClientTLS(pki.RoleController)); err != nil {
		t.Errorf("new-CA client after the rotation: %v", err)
	}
	// The controller refuses an old-CA client certificate (ServerTLS
	// follows SetTrust without a new config).
	oldClientNewTrust := rotationCreds(t, oldCA, op, newCA.CertPEM, oldCA.CertPEM, cross)
	if err := handshake(t, srvTLS, oldClientNewTrust.ClientTLS(pki.RoleController)); err == nil {
		t.Error("a controller that dropped the old CA accepted an old-CA client certificate")
	}
	if pki.TrustID(newCA.Cert.Raw, oldCA.Cert.Raw) != pki.TrustID(oldCA.Cert.Raw, newCA.Cert.Raw) || server.TrustID() != pki.TrustID(newCA.Cert.Raw) {
		t.Error("TrustID depends on order or is not the bundle's")
	}
}
