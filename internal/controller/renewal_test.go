package controller_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/schema"
)

// advanceUntil moves clk by step every 100ms (real time) until cond holds.
func advanceUntil(t testing.TB, clk *clock.Fake, step time.Duration, what string, cond func() error) {
	t.Helper()
	next := time.Now()
	waitFor(t, 20*time.Second, what, func() error {
		err := cond()
		if err != nil && time.Now().After(next) {
			clk.Advance(step)
			next = time.Now().Add(100 * time.Millisecond)
		}
		return err
	})
}

func leafOf(t testing.TB, c tls.Certificate) *x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// serialsOf returns the serials the store lists for an identity.
func serialsOf(tc *testCluster, id pki.Identity) []string {
	v := tc.Nodes[0].C.Store().View()
	switch id.Role {
	case pki.RoleController:
		r, _, _ := schema.Nodes.Get(v, id.Name)
		return r.GetSerials()
	case pki.RoleAgent:
		r, _, _ := schema.Agents.Get(v, id.Name)
		return r.GetSerials()
	}
	r, _, _ := schema.Operators.Get(v, id.Name)
	return r.GetSerials()
}

// A controller renews its own certificate once its renewal time passes (on
// its clock): the new one names the same controller, is recorded in Raft,
// written to its data directory and served to new connections.
func TestRenewal_ControllerRenewsItself(t *testing.T) {
	tc, clk := fakeClockCluster(t)
	c := tc.Nodes[0].C
	old := c.Credentials().Leaf()
	clk.Set(pki.RenewalTime(old).Add(time.Minute))
	advanceUntil(t, clk, 10*time.Minute, "the controller's renewal", func() error {
		if pki.Serial(c.Credentials().Leaf()) == pki.Serial(old) {
			return fmt.Errorf("still serving serial %s", pki.Serial(old))
		}
		return nil
	})
	// Written to the data directory after it is in use.
	var renewed *x509.Certificate
	waitFor(t, 10*time.Second, "the renewed certificate in node.crt", func() error {
		renewed = c.Credentials().Leaf()
		c, _ := os.ReadFile(filepath.Join(tc.Nodes[0].Dir, "node.crt"))
		k, _ := os.ReadFile(filepath.Join(tc.Nodes[0].Dir, "node.key"))
		onDisk, err := tls.X509KeyPair(c, k)
		if err != nil {
			return err
		}
		if !bytes.Equal(onDisk.Certificate[0], renewed.Raw) {
			return errors.New("node.crt does not hold the certificate in use")
		}
		return nil
	})
	if got, want := c.Credentials().Identity(), (pki.Identity{ClusterID: c.Credentials().ClusterID(), Role: pki.RoleController, Name: "c1"}); got != want {
		t.Errorf("renewed identity = %v, want %v", got, want)
	}
	if s := serialsOf(tc, c.Credentials().Identity()); !slices.Contains(s, pki.Serial(renewed)) || !slices.Contains(s, pki.Serial(old)) {
		t.Errorf("node record serials = %v, want the old %s and the new %s", s, pki.Serial(old), pki.Serial(renewed))
	}
	if ips := renewed.IPAddresses; !slices.ContainsFunc(ips, func(ip net.IP) bool { return ip.Equal(net.ParseIP("127.0.0.1")) }) {
		t.Errorf("renewed certificate IP SANs = %v, want the controller's address", ips)
	}
	// New connections get the new certificate and accept the admin.
	conn, err := tls.Dial("tcp", tc.Nodes[0].API, &tls.Config{RootCAs: c.Credentials().CAPool(), ServerName: "localhost",
		Certificates: []tls.Certificate{pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS to the renewed controller: %v", err)
	}
	served := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	// (It may have renewed again meanwhile: the clock is past the new
	// certificate's renewal time too, when it drew an earlier point.)
	if served.Equal(old) || !slices.Contains(serialsOf(tc, c.Credentials().Identity()), pki.Serial(served)) {
		t.Errorf("new connections get serial %s, want a renewed one (old %s)", pki.Serial(served), pki.Serial(old))
	}
	if err := clusterStatus(context.Background(), rawConn(t, tc.Nodes[0].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key)))); err != nil {
		t.Errorf("ClusterStatus from the renewed controller = %v", err)
	}
}

// An agent renews its certificate once its renewal time passes (on its
// clock): the new one names the same agent, is recorded, written to its
// data directory and accepted by the controllers; commands still reach it.
func TestRenewal_AgentRenewsItself(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	clk := clock.NewFake(time.Now())
	dir := filepath.Join(t.TempDir(), "web-1")
	a, _ := tc.startAgentWith("web-1", &countingRuntime{}, func(c *agent.Config) { c.DataDir, c.Clock = dir, clk }, 0)
	old := a.Leaf()
	clk.Set(pki.RenewalTime(old).Add(time.Minute))
	advanceUntil(t, clk, time.Minute, "the agent's renewal", func() error {
		if pki.Serial(a.Leaf()) == pki.Serial(old) {
			return fmt.Errorf("still holding serial %s", pki.Serial(old))
		}
		return nil
	})
	// Written to the data directory after it is in use.
	var renewed *x509.Certificate
	var onDisk tls.Certificate
	waitFor(t, 10*time.Second, "the renewed certificate in the agent's data directory", func() error {
		renewed = a.Leaf()
		c, _ := os.ReadFile(filepath.Join(dir, "agent.crt"))
		k, _ := os.ReadFile(filepath.Join(dir, "agent.key"))
		var err error
		if onDisk, err = tls.X509KeyPair(c, k); err != nil {
			return err
		}
		if !bytes.Equal(onDisk.Certificate[0], renewed.Raw) {
			return errors.New("agent.crt does not hold the certificate in use")
		}
		return nil
	})
	id, err := pki.IdentityFromCert(renewed)
	if err != nil || id.Role != pki.RoleAgent || id.Name != "web-1" {
		t.Fatalf("renewed identity = %v, %v; want agent web-1", id, err)
	}
	if s := serialsOf(tc, id); !slices.Contains(s, pki.Serial(renewed)) {
		t.Errorf("agent record serials = %v, want the new %s", s, pki.Serial(renewed))
	}
	// The controller accepts the renewed certificate.
	key, _ := pki.NewKey()
	if _, err := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, onDisk)).RenewCertificate(context.Background(),
		&controllerv1.RenewCertificateRequest{CsrPem: mustCSR(t, key)}); err != nil {
		t.Errorf("a call with the renewed agent certificate = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd, err := tc.Nodes[0].C.SendCommand(ctx, "web-1", noop("after-renewal"))
	if err == nil {
		_, err = tc.Nodes[0].C.WaitResult(ctx, cmd)
	}
	if err != nil {
		t.Errorf("a command to the renewed agent = %v", err)
	}
}

// RenewCertificate renews every role's certificate: the new one names the
// caller (whatever the CSR says), its serial is recorded, and both it and
// the old one are accepted afterwards.
func TestRenewal_EveryRoleThroughTheRPC(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	dir := filepath.Join(t.TempDir(), "web-1")
	tc.startAgentWith("web-1", &countingRuntime{}, func(c *agent.Config) { c.DataDir = dir }, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for role, cert := range roleCerts(t, tc, dir) {
		t.Run(role, func(t *testing.T) {
			want, err := pki.IdentityFromCert(leafOf(t, cert))
			if err != nil {
				t.Fatal(err)
			}
			key, _ := pki.NewKey()
			csr, _ := pki.NewCSR(key, pki.Identity{Role: pki.RoleOperator, Name: "mallory", OperatorRole: pki.OperatorAdmin})
			resp, err := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, cert)).RenewCertificate(ctx,
				&controllerv1.RenewCertificateRequest{CsrPem: csr})
			if err != nil {
				t.Fatalf("RenewCertificate as %s = %v", role, err)
			}
			renewed := pair(t, resp.GetCertPem(), key)
			leaf := leafOf(t, renewed)
			if got, err := pki.IdentityFromCert(leaf); err != nil || got != want {
				t.Errorf("renewed identity = %v, %v; want the caller's %v", got, err, want)
			}
			if s := serialsOf(tc, want); !slices.Contains(s, pki.Serial(leaf)) {
				t.Errorf("recorded serials = %v, want the new %s", s, pki.Serial(leaf))
			}
			if want.Role == pki.RoleController && len(leaf.IPAddresses) == 0 {
				t.Error("a renewed controller certificate has no IP SANs")
			}
			for name, c := range map[string]tls.Certificate{"renewed": renewed, "previous": cert} {
				k, _ := pki.NewKey()
				if _, err := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, c)).RenewCertificate(ctx,
					&controllerv1.RenewCertificateRequest{CsrPem: mustCSR(t, k)}); err != nil {
					t.Errorf("a call with the %s %s certificate = %v", name, role, err)
				}
			}
		})
	}
}
