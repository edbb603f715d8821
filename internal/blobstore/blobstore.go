// Package blobstore keeps content-addressed files on a controller's disk,
// outside Raft: a blob is named by the SHA-256 of its bytes, written once
// (to a temporary file, verified, then renamed into place) and never
// changed, so readers need no lock and a half-written upload is never
// visible. The store is bounded in size; the least recently used blobs are
// dropped first when a new one would not fit.
package blobstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

var (
	// ErrNotFound is returned for a blob the store does not hold.
	ErrNotFound = errors.New("blobstore: no such blob")
	// ErrDigest is returned for a malformed digest or content that does
	// not match its digest or size.
	ErrDigest = errors.New("blobstore: digest mismatch")
	// ErrTooLarge is returned for a blob larger than the store.
	ErrTooLarge = errors.New("blobstore: blob too large")
)

// Store is a directory of blobs named by digest.
type Store struct {
	dir string
	max int64
	mu  sync.Mutex // serializes eviction
}

// Open opens (creating) a store in dir that holds at most maxBytes.
func Open(dir string, maxBytes int64) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	// Uploads interrupted by a crash leave temporary files: drop them.
	tmps, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, t := range tmps {
		_ = os.Remove(filepath.Join(dir, "tmp", t.Name()))
	}
	return &Store{dir: dir, max: maxBytes}, nil
}

// ValidDigest reports whether d is 64 lowercase hex characters.
func ValidDigest(d string) bool {
	return len(d) == 2*sha256.Size && strings.Trim(d, "0123456789abcdef") == ""
}

func (s *Store) path(digest string) string { return filepath.Join(s.dir, digest) }

// Has reports whether the store holds the blob, and its size.
func (s *Store) Has(digest string) (int64, bool) {
	if !ValidDigest(digest) {
		return 0, false
	}
	fi, err := os.Stat(s.path(digest))
	if err != nil {
		return 0, false
	}
	return fi.Size(), true
}

// Put stores exactly size bytes from r under digest, verifying both. A
// blob already held is not written again (r is not read).
func (s *Store) Put(digest string, size int64, r io.Reader) error {
	if !ValidDigest(digest) {
		return fmt.Errorf("%w: %q is not a SHA-256 digest (64 lowercase hex characters)", ErrDigest, digest)
	}
	if size < 0 || size > s.max {
		return fmt.Errorf("%w: %d bytes, the store holds at most %d", ErrTooLarge, size, s.max)
	}
	if _, ok := s.Has(digest); ok {
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), digest[:12]+"-*")
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	if n != size {
		return fmt.Errorf("%w: got %d bytes, want %d", ErrDigest, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%w: content hashes to %s, not %s", ErrDigest, got, digest)
	}
	if err := s.makeRoom(size); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o600); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	if err := os.Rename(f.Name(), s.path(digest)); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// Open opens a blob for reading and returns its size.
func (s *Store) Open(digest string) (*os.File, int64, error) {
	if !ValidDigest(digest) {
		return nil, 0, fmt.Errorf("%w: %q", ErrNotFound, digest)
	}
	f, err := os.Open(s.path(digest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blobstore: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blobstore: %w", err)
	}
	now := time.Now()
	_ = os.Chtimes(s.path(digest), now, now) // recently used: evicted last
	return f, fi.Size(), nil
}

// makeRoom drops the least recently used blobs until size more bytes fit.
func (s *Store) makeRoom(size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	type blob struct {
		name string
		size int64
		used time.Time
	}
	var blobs []blob
	var total int64
	for _, e := range ents {
		if !ValidDigest(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		blobs = append(blobs, blob{e.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].used.Before(blobs[j].used) })
	for _, b := range blobs {
		if total+size <= s.max {
			break
		}
		if err := os.Remove(s.path(b.name)); err == nil {
			total -= b.size
		}
	}
	return nil
}

// ChunkReader reads a stream of chunks as one byte stream: next returns
// the next chunk, or an error (io.EOF at the end).
func ChunkReader(next func() ([]byte, error)) io.Reader { return &chunkReader{next: next} }

type chunkReader struct {
	next func() ([]byte, error)
	buf  []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.next()
		if err != nil {
			return 0, err
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
