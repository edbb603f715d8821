package blobstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func digest(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// A blob is stored only when its bytes match its digest and size; nothing
// half-written or wrong is ever visible under the digest.
func TestPut_VerifiesDigestAndSize(t *testing.T) {
	s, err := Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("agent binary")
	d := digest(data)
	if err := s.Put(d, int64(len(data)), bytes.NewReader([]byte("agent binarY"))); !errors.Is(err, ErrDigest) {
		t.Fatalf("wrong content: %v, want ErrDigest", err)
	}
	if err := s.Put(d, int64(len(data))+1, bytes.NewReader(data)); !errors.Is(err, ErrDigest) {
		t.Fatalf("short content: %v, want ErrDigest", err)
	}
	if err := s.Put("ABC", 3, bytes.NewReader(data)); !errors.Is(err, ErrDigest) {
		t.Fatalf("bad digest: %v", err)
	}
	if _, ok := s.Has(d); ok {
		t.Fatal("a refused blob is visible")
	}
	if err := s.Put(d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	f, n, err := s.Open(d)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Open = %v, %d", err, n)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("read %q", got)
	}
	if _, _, err := s.Open(digest([]byte("x"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open unknown = %v", err)
	}
	if tmps, _ := os.ReadDir(filepath.Join(s.dir, "tmp")); len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

// The store stays within its bound by dropping the least recently used
// blobs; a blob larger than the store is refused.
func TestPut_EvictsLeastRecentlyUsed(t *testing.T) {
	s, err := Open(t.TempDir(), 30)
	if err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) string {
		d := digest(b)
		if err := s.Put(d, int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := put(bytes.Repeat([]byte("a"), 10))
	old := time.Now().Add(-time.Hour)
	os.Chtimes(s.path(a), old, old)
	b := put(bytes.Repeat([]byte("b"), 10))
	os.Chtimes(s.path(b), old.Add(time.Minute), old.Add(time.Minute))
	f, _, _ := s.Open(a) // a is used now: b is the oldest
	f.Close()
	put(bytes.Repeat([]byte("c"), 15))
	if _, ok := s.Has(b); ok {
		t.Error("the least recently used blob was kept")
	}
	if _, ok := s.Has(a); !ok {
		t.Error("a recently used blob was dropped")
	}
	if err := s.Put(digest(make([]byte, 31)), 31, bytes.NewReader(make([]byte, 31))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
}
