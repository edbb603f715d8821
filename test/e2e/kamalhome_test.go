package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// An agent started with --kamal-home reads and writes Kamal's .kamal tree
// exactly where Kamal does: a custom TLS certificate lands in
// <home>/.kamal/proxy/apps-config/<svc>/tls/<role>/, the env file in
// <home>/.kamal/apps/<svc>/env/roles/<role>.env, and the proxy that
// `kctl proxy reboot` starts serves the same certificate from there.
func TestE2E_KamalHomeLayout(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(1)
	home := filepath.Join(e.dir, "home-deploy")
	must(t, os.MkdirAll(home, 0o755))
	e.agentArgs = [][]string{{"--kamal-home", home}}
	e.startAgent(cs)
	host := "app-" + strings.ToLower(e.agent) + ".test"
	certPEM, keyPEM := selfSigned(t, host)
	p := newProjectWith(t, e, func(d *testenv.DeployYML) {
		d.Proxy = "  host: " + host + "\n  ssl:\n    certificate_pem: CERT_PEM\n    private_key_pem: KEY_PEM\n"
	})
	p.Write(t, "tls/cert.pem", string(certPEM), 0o600)
	p.Write(t, "tls/key.pem", string(keyPEM), 0o600)
	secrets, err := os.ReadFile(p.Path(".kamal/secrets"))
	must(t, err)
	p.Write(t, ".kamal/secrets", string(secrets)+"CERT_PEM=$(cat tls/cert.pem)\nKEY_PEM=$(cat tls/key.pem)\n", 0o600)

	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	tlsDir := filepath.Join(home, ".kamal", "proxy", "apps-config", p.service, "tls", "web")
	if b, err := os.ReadFile(filepath.Join(tlsDir, "cert.pem")); err != nil || !bytes.Equal(bytes.TrimSpace(b), bytes.TrimSpace(certPEM)) {
		t.Fatalf("certificate at Kamal's path %s: %v (%d bytes)", tlsDir, err, len(b))
	}
	envFile := filepath.Join(home, ".kamal", "apps", p.service, "env", "roles", "web.env")
	if fi, err := os.Stat(envFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("env file at Kamal's path %s: %v %v", envFile, fi, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, e.agent, "host", ".kamal")); err == nil {
		t.Error("with --kamal-home the agent still wrote a .kamal tree under its data dir")
	}
	httpsPort := httpsPortOf(t, p)
	want := certFingerprint(t, certPEM)
	check := func(when string) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, func() error {
			got, body, err := httpsGet(host, httpsPort)
			if err == nil && (got != want || body != "v1\n") {
				err = fmt.Errorf("certificate %x, body %q; want %x, v1", got[:4], body, want[:4])
			}
			return err
		})
	}
	check("after deploy")
	if out, err := e.kctlIn(p.Dir, "proxy", "reboot", "-y"); err != nil {
		t.Fatalf("proxy reboot: %v\n%s", err, out)
	}
	check("after proxy reboot")
}

// httpsPortOf reads the project's proxy https_port.
func httpsPortOf(t *testing.T, p *project) string {
	t.Helper()
	b, err := os.ReadFile(p.Path("config/deploy.yml"))
	must(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "https_port: "); ok {
			return v
		}
	}
	t.Fatal("no https_port in deploy.yml")
	return ""
}

// httpsGet fetches / over HTTPS from the proxy on loopback with SNI host and
// returns the served certificate's fingerprint and the body.
func httpsGet(host, port string) ([32]byte, string, error) {
	var fp [32]byte
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: host, InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:"+port+"/", nil)
	req.Host = host
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		return fp, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return fp, "", fmt.Errorf("no certificate")
	}
	return sha256Of(resp.TLS.PeerCertificates[0].Raw), string(body), nil
}

func certFingerprint(t *testing.T, certPEM []byte) [32]byte {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("bad certificate PEM")
	}
	return sha256Of(b.Bytes)
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }

// selfSigned makes a self-signed certificate for host, as an operator's
// custom certificate.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
