package pki_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/pki/pkitest"
)

func TestIdentity_RoundTrip(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	ids := []pki.Identity{
		ca.Identity(pki.RoleController, "c1", ""),
		ca.Identity(pki.RoleAgent, "web-1", ""),
		ca.Identity(pki.RoleOperator, "alice", pki.OperatorAdmin),
		ca.Identity(pki.RoleOperator, "bob", pki.OperatorDeployer),
		ca.Identity(pki.RoleOperator, "carol", pki.OperatorViewer),
		ca.Identity(pki.RoleAgent, "name with spaces, commas=and+plus", ""),
	}
	for _, id := range ids {
		t.Run(id.String(), func(t *testing.T) {
			certPEM, _ := ca.Pair(id, 0)
			c, err := pki.ParseCertificate(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pki.IdentityFromCert(c)
			if err != nil {
				t.Fatalf("IdentityFromCert: %v", err)
			}
			if got != id {
				t.Errorf("IdentityFromCert(Sign(%v)) = %v, want %v", id, got, id)
			}
			wantValidity := pki.DefaultValidity(id.Role)
			if gotV := c.NotAfter.Sub(c.NotBefore); gotV < wantValidity || gotV > wantValidity+10*time.Minute {
				t.Errorf("validity = %v, want about %v", gotV, wantValidity)
			}
		})
	}
}

func TestSign_IgnoresCSRSubject(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, ca.Identity(pki.RoleOperator, "mallory", pki.OperatorAdmin))
	if err != nil {
		t.Fatal(err)
	}
	want := pki.Identity{Role: pki.RoleAgent, Name: "web-1"} // ClusterID filled from the CA
	certPEM, err := ca.Sign(csr, want, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := pki.ParseCertificate(certPEM)
	got, err := pki.IdentityFromCert(c)
	want.ClusterID = ca.ClusterID
	if err != nil || got != want {
		t.Errorf("IdentityFromCert = %v, %v; want %v, nil", got, err, want)
	}
	if _, err := pki.NewCredentials(certPEM, key, ca.CertPEM); err != nil {
		t.Errorf("NewCredentials: %v", err)
	}
}

func TestSign_Rejects(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, pki.Identity{})
	tests := []struct {
		name string
		csr  []byte
		id   pki.Identity
		want error
	}{
		{"no name", csr, pki.Identity{Role: pki.RoleAgent}, pki.ErrInvalidIdentity},
		{"unknown role", csr, pki.Identity{Role: "root", Name: "x"}, pki.ErrInvalidIdentity},
		{"operator without operator role", csr, pki.Identity{Role: pki.RoleOperator, Name: "x"}, pki.ErrInvalidIdentity},
		{"agent with operator role", csr, pki.Identity{Role: pki.RoleAgent, Name: "x", OperatorRole: pki.OperatorAdmin}, pki.ErrInvalidIdentity},
		{"other cluster", csr, pki.Identity{ClusterID: "other", Role: pki.RoleAgent, Name: "x"}, pki.ErrWrongCluster},
		{"garbage CSR", []byte("not a csr"), pki.Identity{Role: pki.RoleAgent, Name: "x"}, pki.ErrInvalidCSR},
		{"tampered CSR", bytes.Replace(csr, []byte("A"), []byte("B"), 3), pki.Identity{Role: pki.RoleAgent, Name: "x"}, pki.ErrInvalidCSR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.Sign(tt.csr, tt.id, time.Hour)
			if !errors.Is(err, tt.want) {
				t.Errorf("Sign(%v) error = %v, want %v", tt.id, err, tt.want)
			}
		})
	}
}

func TestSignWithSANs_Controller(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, pki.Identity{})
	id := ca.Identity(pki.RoleController, "c1", "")
	certPEM, err := ca.SignWithSANs(csr, id, 0, []string{"c1.example"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := pki.ParseCertificate(certPEM)
	if got, want := c.DNSNames, []string{"c1.example"}; !slices.Equal(got, want) {
		t.Errorf("DNSNames = %v, want %v", got, want)
	}
	if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IPAddresses = %v, want [127.0.0.1]", c.IPAddresses)
	}
	if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("controller ExtKeyUsage = %v, want ServerAuth", c.ExtKeyUsage)
	}
	if _, err := ca.SignWithSANs(csr, ca.Identity(pki.RoleAgent, "a", ""), 0, []string{"x"}, nil); !errors.Is(err, pki.ErrInvalidIdentity) {
		t.Errorf("SignWithSANs(agent) error = %v, want ErrInvalidIdentity", err)
	}
}

func TestLoadCA_RoundTrip(t *testing.T) {
	ca, err := pki.NewCA("cluster-1")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := pki.LoadCA(ca.CertPEM, keyPEM)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if got, want := loaded.Digest(), ca.Digest(); got != want {
		t.Errorf("Digest after LoadCA = %s, want %s", got, want)
	}
	if got, want := loaded.ClusterID(), "cluster-1"; got != want {
		t.Errorf("ClusterID = %q, want %q", got, want)
	}
	// A certificate signed by the loaded CA is trusted by the original's PEM.
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, pki.Identity{})
	certPEM, err := loaded.Sign(csr, pki.Identity{Role: pki.RoleAgent, Name: "a"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.NewCredentials(certPEM, key, ca.CertPEM); err != nil {
		t.Errorf("NewCredentials with a certificate from the loaded CA: %v", err)
	}
	other, _ := pki.NewCA("cluster-1")
	otherKey, _ := other.KeyPEM()
	if _, err := pki.LoadCA(ca.CertPEM, otherKey); !errors.Is(err, pki.ErrInvalidCA) {
		t.Errorf("LoadCA(mismatched key) error = %v, want ErrInvalidCA", err)
	}
	if got := len(ca.Digest()); got != 64 {
		t.Errorf("len(Digest()) = %d, want 64", got)
	}
	if _, err := pki.VerifyCADigest(ca.CertPEM, ca.Digest()); err != nil {
		t.Errorf("VerifyCADigest(own digest): %v", err)
	}
	if _, err := pki.VerifyCADigest(other.CertPEM, ca.Digest()); !errors.Is(err, pki.ErrCADigestMismatch) {
		t.Errorf("VerifyCADigest(other CA) error = %v, want ErrCADigestMismatch", err)
	}
}

func TestToken(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	tok, hash := ca.Token()
	s := tok.String()
	if !strings.HasPrefix(s, "KCTL1-"+ca.Digest()+"-") {
		t.Errorf("Token.String() = %q, want prefix KCTL1-<digest>-", s)
	}
	got, err := pki.ParseToken("  " + s + "\n")
	if err != nil || got != tok {
		t.Fatalf("ParseToken(String()) = %v, %v; want %v, nil", got, err, tok)
	}
	if !pki.SecretMatches(hash, got.Secret) {
		t.Errorf("SecretMatches(hash, own secret) = false, want true")
	}
	tok2, _ := ca.Token()
	if tok2.Secret == tok.Secret {
		t.Errorf("two tokens share the secret %q", tok.Secret)
	}
	if pki.SecretMatches(hash, tok2.Secret) {
		t.Errorf("SecretMatches(hash, another token's secret) = true, want false")
	}
	if pki.SecretMatches(hash, "") || pki.SecretMatches(nil, tok.Secret) {
		t.Errorf("SecretMatches with an empty secret or hash = true, want false")
	}
}

func TestParseToken_Malformed(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	tok, _ := ca.Token()
	d, sec := tok.CADigest, tok.Secret
	tests := map[string]string{
		"empty":              "",
		"no dashes":          "KCTL1" + d + sec,
		"too many parts":     "KCTL1-" + d + "-" + sec + "-x",
		"wrong prefix":       "SWMTKN-" + d + "-" + sec,
		"short digest":       "KCTL1-" + d[:63] + "-" + sec,
		"uppercase digest":   "KCTL1-" + strings.ToUpper(d) + "-" + sec,
		"non-hex digest":     "KCTL1-" + "g" + d[1:] + "-" + sec,
		"short secret":       "KCTL1-" + d + "-" + sec[:31],
		"long secret":        "KCTL1-" + d + "-" + sec + "a",
		"bad secret charset": "KCTL1-" + d + "-" + "0" + sec[1:],
		"empty secret":       "KCTL1-" + d + "-",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := pki.ParseToken(in)
			if !errors.Is(err, pki.ErrMalformedToken) {
				t.Fatalf("ParseToken(%q) = %v, %v; want ErrMalformedToken", in, got, err)
			}
			if len(sec) > 0 && strings.Contains(err.Error(), sec[:16]) {
				t.Errorf("ParseToken error %q repeats the secret", err)
			}
		})
	}
}

func TestCredentials_Update(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	id := ca.Identity(pki.RoleAgent, "web-1", "")
	cr := ca.Credentials(id)
	old := cr.Leaf()
	cert, key := ca.Pair(id, time.Hour)
	if err := cr.Update(cert, key); err != nil {
		t.Fatalf("Update(renewed): %v", err)
	}
	if cr.Leaf().SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Errorf("Leaf() after Update has the old serial %s", pki.Serial(old))
	}
	if got := cr.Identity(); got != id {
		t.Errorf("Identity() after Update = %v, want %v", got, id)
	}
	cert2, key2 := ca.Pair(ca.Identity(pki.RoleAgent, "web-2", ""), time.Hour)
	if err := cr.Update(cert2, key2); !errors.Is(err, pki.ErrIdentityChanged) {
		t.Errorf("Update(other name) error = %v, want ErrIdentityChanged", err)
	}
	fcert, fkey := ca.ForeignCA().Pair(id, time.Hour)
	if err := cr.Update(fcert, fkey); !errors.Is(err, pki.ErrUntrusted) {
		t.Errorf("Update(foreign CA) error = %v, want ErrUntrusted", err)
	}
	if err := cr.Update(cert, key2); !errors.Is(err, pki.ErrInvalidCertificate) {
		t.Errorf("Update(mismatched key) error = %v, want ErrInvalidCertificate", err)
	}
	if _, err := pki.NewCredentials(fcert, fkey, ca.CertPEM); !errors.Is(err, pki.ErrUntrusted) {
		t.Errorf("NewCredentials(foreign CA) error = %v, want ErrUntrusted", err)
	}
}

func TestNeedsRenewal(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	id := ca.Identity(pki.RoleAgent, "web-1", "")
	seen := map[time.Time]bool{}
	for range 20 {
		start := time.Now().Truncate(time.Second)
		c, _ := pki.ParseCertificate(must(ca.PairAt(id, start, start.Add(100*time.Hour))))
		at := pki.RenewalTime(c)
		if lo, hi := start.Add(50*time.Hour), start.Add(80*time.Hour); at.Before(lo) || at.After(hi) {
			t.Errorf("RenewalTime = %v after NotBefore, want between 50h and 80h", at.Sub(start))
		}
		if again := pki.RenewalTime(c); !again.Equal(at) {
			t.Errorf("RenewalTime is not stable: %v then %v", at, again)
		}
		if pki.NeedsRenewal(c, start.Add(49*time.Hour)) {
			t.Errorf("NeedsRenewal at 49%% = true, want false")
		}
		if !pki.NeedsRenewal(c, start.Add(81*time.Hour)) {
			t.Errorf("NeedsRenewal at 81%% = false, want true")
		}
		if pki.NeedsRenewal(c, at.Add(-time.Second)) || !pki.NeedsRenewal(c, at) {
			t.Errorf("NeedsRenewal does not switch at RenewalTime %v", at)
		}
		seen[at] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 certificates have %d distinct renewal times, want them spread", len(seen))
	}
}

func must(cert, _ []byte) []byte { return cert }

func FuzzParseToken(f *testing.F) {
	ca, err := pki.NewCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := pki.NewToken(ca)
	f.Add(tok.String())
	f.Add("KCTL1--")
	f.Add("KCTL1-" + tok.CADigest + "-" + tok.Secret + "=")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := pki.ParseToken(s)
		if err != nil {
			if !errors.Is(err, pki.ErrMalformedToken) {
				t.Fatalf("ParseToken(%q) error = %v, want ErrMalformedToken", s, err)
			}
			return
		}
		again, err := pki.ParseToken(got.String())
		if err != nil || again != got {
			t.Fatalf("ParseToken(ParseToken(%q).String()) = %v, %v; want %v", s, again, err, got)
		}
	})
}

func TestCredentials_ConcurrentUpdate(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	id := ca.Identity(pki.RoleController, "c1", "")
	cr := ca.Credentials(id)
	pairs := make([][2][]byte, 20)
	for i := range pairs {
		pairs[i][0], pairs[i][1] = ca.Pair(id, time.Hour)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range pairs {
			if err := cr.Update(p[0], p[1]); err != nil {
				t.Errorf("Update: %v", err)
			}
		}
	}()
	cfg := cr.ServerTLS()
	for range 200 {
		c, err := cfg.GetCertificate(nil)
		if err != nil || len(c.Certificate) != 2 {
			t.Fatalf("GetCertificate = %d certificates, %v; want leaf and CA", len(c.Certificate), err)
		}
		if got := cr.Identity(); got != id {
			t.Fatalf("Identity() = %v, want %v", got, id)
		}
	}
	<-done
	if got, want := pki.Serial(cr.Leaf()), pki.Serial(mustParse(t, pairs[len(pairs)-1][0])); got != want {
		t.Errorf("Leaf() after all updates has serial %s, want the last one %s", got, want)
	}
}

func mustParse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func BenchmarkSign(b *testing.B) {
	ca, err := pki.NewCA("bench")
	if err != nil {
		b.Fatal(err)
	}
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, pki.Identity{})
	id := pki.Identity{Role: pki.RoleAgent, Name: "web-1"}
	for b.Loop() {
		if _, err := ca.Sign(csr, id, 0); err != nil {
			b.Fatal(err)
		}
	}
}
