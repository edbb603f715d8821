package sealbox_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

func mustKey(t testing.TB) *sealbox.PrivateKey {
	t.Helper()
	k, err := sealbox.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return k, c
}

// A bundle sealed to an agent opens with its key only, and only under its
// name; the key survives a round trip through its file (0600).
func TestSealOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), sealbox.KeyFile)
	k, created, err := sealbox.LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey = %v, %v", created, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", st.Mode().Perm())
	}
	again, created, err := sealbox.LoadOrCreateKey(path)
	if err != nil || created || !again.Equal(k.PublicKey()) {
		t.Fatalf("LoadOrCreateKey again = %v, %v; want the same key", created, err)
	}
	ct, err := sealbox.Seal("web-1", k.PublicKey(), []byte("canary-7f3a"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ct), "canary-7f3a") {
		t.Fatal("the ciphertext holds the plaintext")
	}
	if pt, err := again.Open("web-1", ct); err != nil || string(pt) != "canary-7f3a" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := again.Open("web-2", ct); !errors.Is(err, sealbox.ErrOpen) {
		t.Errorf("Open under another agent's name = %v, want ErrOpen", err)
	}
	if _, err := mustKey(t).Open("web-1", ct); !errors.Is(err, sealbox.ErrOpen) {
		t.Errorf("Open with another key = %v, want ErrOpen", err)
	}
	if _, err := sealbox.LoadKey(filepath.Join(t.TempDir(), "none")); !errors.Is(err, sealbox.ErrNoKey) {
		t.Errorf("LoadKey(missing) = %v, want ErrNoKey", err)
	}
}

// Verify accepts the CA's certification of the agent's key and refuses a
// key without one, a forged or another CA's signature, a certification
// moved to another agent's name, and another key under a real signature.
func TestCertification(t *testing.T) {
	caKey, caCert := newCA(t)
	otherKey, _ := newCA(t)
	k := mustKey(t)
	sig, err := sealbox.Certify(caKey, "web-1", k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := sealbox.Verify(caCert, "web-1", k.PublicKey(), sig); err != nil {
		t.Fatalf("Verify(certified) = %v", err)
	}
	otherSig, _ := sealbox.Certify(otherKey, "web-1", k.PublicKey())
	forged := append([]byte{}, sig...)
	forged[len(forged)-1] ^= 1
	attacker := mustKey(t)
	for name, c := range map[string]struct {
		agent    string
		pub, sig []byte
		want     error
	}{
		"no key (enrolled before)": {"web-1", nil, nil, sealbox.ErrNoKey},
		"no signature":             {"web-1", k.PublicKey(), nil, sealbox.ErrCertification},
		"forged signature":         {"web-1", k.PublicKey(), forged, sealbox.ErrCertification},
		"another CA's signature":   {"web-1", k.PublicKey(), otherSig, sealbox.ErrCertification},
		"another agent's name":     {"web-2", k.PublicKey(), sig, sealbox.ErrCertification},
		"a substituted key":        {"web-1", attacker.PublicKey(), sig, sealbox.ErrCertification},
	} {
		if err := sealbox.Verify(caCert, c.agent, c.pub, c.sig); !errors.Is(err, c.want) {
			t.Errorf("Verify(%s) = %v, want %v", name, err, c.want)
		}
	}
	if _, err := sealbox.Certify(caKey, "web-1", []byte("not a key")); err == nil {
		t.Error("Certify(not a key) succeeded")
	}
}

// request has every kind of secret field: registry credentials (every
// host), a role's proxy TLS key (the role's hosts), each host's env and
// file, an accessory's.
func request() *deployv1.Request {
	ctr := func(h string) *specv1.Container {
		return &specv1.Container{Name: "app", SecretEnv: []*specv1.KeyValue{{Key: "DB_PASSWORD", Value: "env-" + h}}, Files: []*specv1.File{{Path: "/k", Content: []byte("file-" + h)}}}
	}
	return &deployv1.Request{
		Registry: &specv1.RegistryAuth{Server: "reg", Username: "reg-user", Password: "reg-password"},
		Roles: []*deployv1.Role{{Name: "web", Proxy: &specv1.ProxyDeploy{Files: []*specv1.File{{Path: "tls.key", Content: []byte("tls-key")}}},
			Hosts: []*deployv1.HostContainer{{Host: "h1", Container: ctr("h1")}, {Host: "h2", Container: ctr("h2")}}}},
		Accessories: []*deployv1.Accessory{{Name: "db", Hosts: []*deployv1.HostContainer{{Host: "h3", Container: ctr("h3")}}}},
	}
}

// SealRequest leaves no value in the request and gives each host the
// values its operations need and no other; each host's agent opens them
// back into an operation; CheckSealed accepts the result and refuses
// plaintext or a missing bundle; an agent without a key refuses.
func TestSealRequest_PerHostBundles(t *testing.T) {
	keys := map[string]*sealbox.PrivateKey{"h1": mustKey(t), "h2": mustKey(t), "h3": mustKey(t)}
	plain := request()
	req := proto.Clone(plain).(*deployv1.Request)
	if err := sealbox.CheckSealed(req); err == nil {
		t.Error("CheckSealed(plaintext) = nil")
	}
	err := sealbox.SealRequest(req, func(h string) ([]byte, error) { return keys[h].PublicKey(), nil })
	if err != nil {
		t.Fatal(err)
	}
	b, _ := proto.Marshal(req)
	for _, v := range []string{"reg-user", "reg-password", "tls-key", "env-h1", "file-h2", "env-h3"} {
		if strings.Contains(string(b), v) {
			t.Errorf("the sealed request holds %q", v)
		}
	}
	if len(req.GetSealedSecrets()) != 3 {
		t.Fatalf("bundles for %d hosts, want 3", len(req.GetSealedSecrets()))
	}
	if err := sealbox.CheckSealed(req); err != nil {
		t.Fatalf("CheckSealed(sealed) = %v", err)
	}
	// What each host can open: build an op naming every path of the
	// request and see which resolve.
	opFor := func(r *deployv1.Request, host string, hc int) *agentv1.Operation {
		c := r.GetRoles()[0].GetHosts()[hc].GetContainer()
		if host == "h3" {
			c = r.GetAccessories()[0].GetHosts()[0].GetContainer()
		}
		return &agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: proto.Clone(c).(*specv1.Container), Proxy: proto.Clone(r.GetRoles()[0].GetProxy()).(*specv1.ProxyDeploy)}}}
	}
	op := opFor(req, "h2", 1)
	op.SealedSecrets = req.GetSealedSecrets()["h2"]
	if err := sealbox.OpenOperation(op, "h2", keys["h2"]); err != nil {
		t.Fatalf("OpenOperation(h2) = %v", err)
	}
	if !proto.Equal(op, opFor(plain, "h2", 1)) {
		t.Errorf("opened op = %v, want %v", op, opFor(plain, "h2", 1))
	}
	// h2's bundle does not hold h1's values; h3 (no web role) has no TLS key.
	stolen := opFor(req, "h1", 0)
	stolen.SealedSecrets = req.GetSealedSecrets()["h2"]
	if err := sealbox.OpenOperation(stolen, "h2", keys["h2"]); !errors.Is(err, sealbox.ErrOpen) {
		t.Errorf("h2 opening h1's secrets = %v, want ErrOpen", err)
	}
	h3 := opFor(req, "h3", 0)
	h3.SealedSecrets = req.GetSealedSecrets()["h3"]
	if err := sealbox.OpenOperation(h3, "h3", keys["h3"]); !errors.Is(err, sealbox.ErrOpen) {
		t.Errorf("h3 opening the web role's TLS key = %v, want ErrOpen", err)
	}
	noKey := opFor(req, "h1", 0)
	noKey.SealedSecrets = req.GetSealedSecrets()["h1"]
	if err := sealbox.OpenOperation(noKey, "h1", nil); !errors.Is(err, sealbox.ErrNoKey) || !strings.Contains(err.Error(), "re-enrol") {
		t.Errorf("OpenOperation without a key = %v, want ErrNoKey saying re-enrol", err)
	}
	delete(req.SealedSecrets, "h3")
	if err := sealbox.CheckSealed(req); err == nil {
		t.Error("CheckSealed(missing h3 bundle) = nil")
	}
	// No key for a host: SealRequest says why.
	err = sealbox.SealRequest(request(), func(h string) ([]byte, error) {
		if h == "h3" {
			return nil, sealbox.ErrNoKey
		}
		return keys[h].PublicKey(), nil
	})
	if !errors.Is(err, sealbox.ErrNoKey) {
		t.Errorf("SealRequest(h3 without key) = %v, want ErrNoKey", err)
	}
}

// Wrap and Unwrap round-trip; another key or another label fails.
func TestWrap(t *testing.T) {
	kek, other := sealbox.NewSymmetricKey(), sealbox.NewSymmetricKey()
	w, err := sealbox.Wrap(kek, []byte("ca-key"), []byte("label"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := sealbox.Unwrap(kek, w, []byte("label")); err != nil || string(pt) != "ca-key" {
		t.Fatalf("Unwrap = %q, %v", pt, err)
	}
	for name, c := range map[string]struct{ key, label []byte }{"another key": {other, []byte("label")}, "another label": {kek, []byte("other")}} {
		if _, err := sealbox.Unwrap(c.key, w, c.label); !errors.Is(err, sealbox.ErrUnwrap) {
			t.Errorf("Unwrap(%s) = %v, want ErrUnwrap", name, err)
		}
	}
	if _, err := sealbox.Unwrap(kek, w[:5], []byte("label")); !errors.Is(err, sealbox.ErrUnwrap) {
		t.Errorf("Unwrap(truncated) = %v", err)
	}
}

// BenchmarkSealRequest is kctl's cost per host: one bundle sealed per
// agent (each with env, files, registry credentials), after verifying the
// agent's certification.
func BenchmarkSealPerHost(b *testing.B) {
	caKey, caCert := newCA(b)
	const hosts = 100
	type agentKey struct{ pub, sig []byte }
	agents := map[string]agentKey{}
	req := &deployv1.Request{Registry: &specv1.RegistryAuth{Server: "reg", Username: "u", Password: "registry-password"}}
	role := &deployv1.Role{Name: "web"}
	for i := range hosts {
		h := "h" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		k := mustKey(b)
		sig, _ := sealbox.Certify(caKey, h, k.PublicKey())
		agents[h] = agentKey{k.PublicKey(), sig}
		role.Hosts = append(role.Hosts, &deployv1.HostContainer{Host: h, Container: &specv1.Container{
			SecretEnv: []*specv1.KeyValue{{Key: "A", Value: "secret-a"}, {Key: "B", Value: "secret-b"}, {Key: "C", Value: "secret-c"}},
			Files:     []*specv1.File{{Path: "/k", Content: make([]byte, 2048)}}}})
	}
	req.Roles = []*deployv1.Role{role}
	b.ReportAllocs()
	for b.Loop() {
		r := proto.Clone(req).(*deployv1.Request)
		err := sealbox.SealRequest(r, func(h string) ([]byte, error) {
			a := agents[h]
			if err := sealbox.Verify(caCert, h, a.pub, a.sig); err != nil {
				return nil, err
			}
			return a.pub, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/hosts, "µs/host")
}

// BenchmarkOpenOperation is an agent's cost to open one operation's
// secrets (it does so for each secret-bearing operation: pull, boot).
func BenchmarkOpenOperation(b *testing.B) {
	k := mustKey(b)
	op := &agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: &specv1.Container{
		SecretEnv: []*specv1.KeyValue{{Key: "A", Value: "secret-a"}, {Key: "B", Value: "secret-b"}, {Key: "C", Value: "secret-c"}},
		Files:     []*specv1.File{{Path: "/k", Content: make([]byte, 2048)}}}}}}
	if err := sealbox.SealOperation(op, "h1", k.PublicKey()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		o := proto.Clone(op).(*agentv1.Operation)
		if err := sealbox.OpenOperation(o, "h1", k); err != nil {
			b.Fatal(err)
		}
	}
}

// A request that shares one message between fields (the service's and an
// accessory's registry credentials, as kctl builds them) seals the real
// value under both paths, never one path's placeholder under another.
func TestSealRequest_SharedMessages(t *testing.T) {
	k := mustKey(t)
	auth := &specv1.RegistryAuth{Server: "reg", Username: "reg-user", Password: "reg-password"}
	req := &deployv1.Request{Registry: auth, Accessories: []*deployv1.Accessory{{Name: "db", Registry: auth,
		Hosts: []*deployv1.HostContainer{{Host: "h1", Container: &specv1.Container{Name: "db"}}}}}}
	if err := sealbox.SealRequest(req, func(string) ([]byte, error) { return k.PublicKey(), nil }); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"registry", "accessories/0/registry"} {
		op := &agentv1.Operation{Op: &agentv1.Operation_PullImage{PullImage: &agentv1.PullImage{Auth: &specv1.RegistryAuth{
			Username: sealbox.Placeholder + path + "/username", Password: sealbox.Placeholder + path + "/password"}}}, SealedSecrets: req.GetSealedSecrets()["h1"]}
		if err := sealbox.OpenOperation(op, "h1", k); err != nil {
			t.Fatalf("OpenOperation(%s) = %v", path, err)
		}
		if a := op.GetPullImage().GetAuth(); a.GetUsername() != "reg-user" || a.GetPassword() != "reg-password" {
			t.Errorf("%s opened to %q/%q, want reg-user/reg-password", path, a.GetUsername(), a.GetPassword())
		}
	}
}
