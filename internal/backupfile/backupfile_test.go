package backupfile

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func write(t *testing.T, state []byte) (string, *controllerv1.BackupHeader) {
	t.Helper()
	sum := sha256.Sum256(state)
	hdr := &controllerv1.BackupHeader{Format: Format, ProtocolVersion: 2, ClusterId: "c", Sha256: sum[:], Size: uint64(len(state))}
	path := filepath.Join(t.TempDir(), "b.kctl")
	if err := WriteFile(path, hdr, bytes.NewReader(state)); err != nil {
		t.Fatal(err)
	}
	return path, hdr
}

func TestRoundTripModeAndVerify(t *testing.T) {
	state := bytes.Repeat([]byte("state"), 10000)
	path, _ := write(t, state)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b.State())
	if !bytes.Equal(got, state) {
		t.Errorf("state differs")
	}
}

func TestDamageRefused(t *testing.T) {
	state := bytes.Repeat([]byte("state"), 1000)
	path, _ := write(t, state)
	raw, _ := os.ReadFile(path)
	for name, mutate := range map[string]func([]byte) []byte{
		"flipped byte": func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-100] ^= 1; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-1] },
		"appended":     func(b []byte) []byte { return append(bytes.Clone(b), 'x') },
		"bad magic":    func(b []byte) []byte { b = bytes.Clone(b); b[0] = 'X'; return b },
	} {
		p := filepath.Join(t.TempDir(), "d")
		os.WriteFile(p, mutate(raw), 0o600)
		b, err := Open(p)
		if err == nil {
			err = b.Verify()
			b.Close()
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// A state that does not match its header is never written.
	hdr := &controllerv1.BackupHeader{Format: Format, Sha256: make([]byte, 32), Size: 3}
	p := filepath.Join(t.TempDir(), "never")
	if err := WriteFile(p, hdr, bytes.NewReader([]byte("abc"))); !errors.Is(err, ErrInvalid) {
		t.Errorf("WriteFile with a wrong checksum = %v", err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Errorf("a mismatching backup was written")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
