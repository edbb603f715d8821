package testenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FindPrivateKey reports where data holds the private key of pub in any
// usual encoding: a PEM block, DER (PKCS #8 or SEC 1) at any offset, or
// base64 of DER (standard or URL alphabet, as JSON and YAML write bytes).
// It needs only the public key, so a test can look for a key it cannot
// read (the cluster CA's, whose certificate every party holds).
func FindPrivateKey(pub *ecdsa.PublicKey, data []byte) []string {
	var out []string
	matches := func(k any) bool {
		ek, ok := k.(*ecdsa.PrivateKey)
		return ok && ek.PublicKey.Equal(pub)
	}
	der := func(b []byte) (int, bool) {
		for i := 0; i < len(b); i++ {
			if b[i] != 0x30 {
				continue
			}
			w := b[i:min(len(b), i+400)]
			if k, err := x509.ParsePKCS8PrivateKey(w); err == nil && matches(k) {
				return i, true
			}
			if k, err := x509.ParseECPrivateKey(w); err == nil && matches(k) {
				return i, true
			}
		}
		return 0, false
	}
	// PEM, wherever a block starts.
	for rest := data; ; {
		i := bytes.Index(rest, []byte("-----BEGIN"))
		if i < 0 {
			break
		}
		blk, r := pem.Decode(rest[i:])
		if blk == nil {
			rest = rest[i+len("-----BEGIN"):]
			continue
		}
		if _, ok := der(blk.Bytes); ok {
			out = append(out, fmt.Sprintf("PEM %s block", blk.Type))
		}
		rest = r
	}
	if i, ok := der(data); ok {
		out = append(out, fmt.Sprintf("DER at offset %d", i))
	}
	// base64 runs long enough to hold a P-256 key's DER (121+ bytes).
	isB64 := func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_' || c == '='
	}
	for i := 0; i < len(data); {
		if !isB64(data[i]) {
			i++
			continue
		}
		j := i
		for j < len(data) && isB64(data[j]) {
			j++
		}
		if run := data[i:j]; len(run) >= 160 {
			for shift := range 4 {
				s := bytes.TrimRight(run[shift:], "=")
				s = s[:len(s)/4*4]
				for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
					dec := make([]byte, enc.DecodedLen(len(s)))
					n, _ := enc.Decode(dec, s) // n: what decoded before any bad byte
					if _, ok := der(dec[:n]); ok {
						out = append(out, fmt.Sprintf("base64 of DER at offset %d", i))
					}
				}
			}
		}
		i = j
	}
	return out
}

// FindPrivateKeyInDir runs FindPrivateKey on every file under dir and
// returns "file: where" for each hit.
func FindPrivateKeyInDir(pub *ecdsa.PublicKey, dir string) ([]string, int, error) {
	var hits []string
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		rel, _ := filepath.Rel(dir, path)
		for _, h := range FindPrivateKey(pub, b) {
			hits = append(hits, rel+": "+h)
		}
		return nil
	})
	return hits, files, err
}
