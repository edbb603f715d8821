package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"
)

// FindPrivateKey finds a key in every encoding a leak could take, inside
// other bytes, and nothing where there is no key.
func TestFindPrivateKey(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k)
	sec1, _ := x509.MarshalECPrivateKey(k)
	j, _ := json.Marshal(map[string][]byte{"key": pkcs8})
	forms := map[string][]byte{
		"PEM":           pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"PKCS8 DER":     pkcs8,
		"SEC1 DER":      sec1,
		"base64":        []byte(base64.StdEncoding.EncodeToString(pkcs8)),
		"base64 url":    []byte(base64.RawURLEncoding.EncodeToString(sec1)),
		"JSON of bytes": j,
	}
	pad := []byte("0000 some text around it 0\x30\x81 ")
	for name, f := range forms {
		data := append(append(append([]byte{}, pad...), f...), pad...)
		if got := FindPrivateKey(&k.PublicKey, data); len(got) == 0 {
			t.Errorf("FindPrivateKey(%s) found nothing", name)
		}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, f := range forms {
		if got := FindPrivateKey(&other.PublicKey, f); len(got) != 0 {
			t.Errorf("FindPrivateKey(another key, %s) = %v, want nothing", name, got)
		}
	}
}
