// Package backupfile reads and writes cluster backup files (`kctl cluster
// snapshot save`, `controller run --restore`). A backup file is:
//
//	"KCTL-BACKUP\n"                  12 bytes of magic
//	BackupHeader                     length-delimited protobuf (protodelim), at most MaxHeader bytes
//	state                            header.size bytes: raftstore's snapshot stream of every Raft table
//
// The header names the format (Format), the protocol version of the
// controller that wrote it, the cluster, the applied index and the state's
// SHA-256, which Verify checks before anything restores it. The state holds
// secrets (the cluster CA's key, hashes of tokens): files are written 0600.
//
// It is a wire-type leaf: kctl writes files with it, the controller reads
// them; it links no server code.
package backupfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protodelim"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// Magic opens every backup file.
const Magic = "KCTL-BACKUP\n"

// Format is the backup file format this build writes and reads.
const Format = 1

// MaxHeader bounds the encoded header.
const MaxHeader = 64 << 10

// ErrInvalid is returned for a file that is not a usable backup: bad magic,
// unknown format, damaged header, or a state whose checksum or size does not
// match its header.
var ErrInvalid = errors.New("backupfile: not a valid backup")

// WriteFile writes a backup file at path atomically (a temporary file in the
// same directory, fsynced, renamed), mode 0600: hdr, then the state read
// from state, which must be exactly hdr.size bytes with SHA-256 hdr.sha256.
func WriteFile(path string, hdr *controllerv1.BackupHeader, state io.Reader) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := writeHeader(bw, hdr); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(bw, h), state)
	if err != nil {
		return fmt.Errorf("backupfile: write state: %w", err)
	}
	if uint64(n) != hdr.GetSize() || !bytes.Equal(h.Sum(nil), hdr.GetSha256()) {
		return fmt.Errorf("%w: the state written does not match its header", ErrInvalid)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func writeHeader(w io.Writer, hdr *controllerv1.BackupHeader) error {
	if _, err := io.WriteString(w, Magic); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	if _, err := protodelim.MarshalTo(w, hdr); err != nil {
		return fmt.Errorf("backupfile: write header: %w", err)
	}
	return nil
}

// File is an open backup file.
type File struct {
	Header *controllerv1.BackupHeader
	f      *os.File
	// offset is where the state starts.
	offset int64
}

// Open opens a backup file and reads its header; it checks the magic and
// the format, not the state (see Verify).
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backupfile: %w", err)
	}
	br := bufio.NewReader(f)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		f.Close()
		return nil, fmt.Errorf("%w: %s does not start with a kctl backup header", ErrInvalid, path)
	}
	hdr := new(controllerv1.BackupHeader)
	cr := &countingReader{r: br}
	if err := (protodelim.UnmarshalOptions{MaxSize: MaxHeader}).UnmarshalFrom(cr, hdr); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: damaged header: %v", ErrInvalid, path, err)
	}
	if hdr.GetFormat() != Format {
		f.Close()
		return nil, fmt.Errorf("%w: %s has backup format %d; this build reads format %d (use a build of the version that wrote it)", ErrInvalid, path, hdr.GetFormat(), Format)
	}
	return &File{Header: hdr, f: f, offset: int64(len(Magic)) + cr.n}, nil
}

// State returns a reader of the state (from its start, each call).
func (b *File) State() io.Reader {
	return io.NewSectionReader(b.f, b.offset, int64(b.Header.GetSize()))
}

// Verify checks that the state is complete, has no trailing bytes and
// matches the header's SHA-256.
func (b *File) Verify() error {
	st, err := b.f.Stat()
	if err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	if want := b.offset + int64(b.Header.GetSize()); st.Size() != want {
		return fmt.Errorf("%w: %s is %d bytes, its header says %d (truncated or appended to)", ErrInvalid, b.f.Name(), st.Size(), want)
	}
	h := sha256.New()
	if _, err := io.Copy(h, b.State()); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), b.Header.GetSha256()) {
		return fmt.Errorf("%w: %s: the state's SHA-256 does not match its header (the file is damaged)", ErrInvalid, b.f.Name())
	}
	return nil
}

// Close closes the file.
func (b *File) Close() error { return b.f.Close() }

type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// Receive reads a SaveSnapshot stream (recv returns its next message):
// the header, the state's chunks, which it writes to w, and the trailer,
// which it checks against what arrived. It returns the header completed
// from the trailer.
func Receive(recv func() (*controllerv1.SaveSnapshotResponse, error), w io.Writer) (*controllerv1.BackupHeader, error) {
	var hdr *controllerv1.BackupHeader
	h := sha256.New()
	var size uint64
	for {
		m, err := recv()
		if err == io.EOF {
			return nil, errors.New("the controller ended the snapshot early (no trailer): nothing was saved")
		}
		if err != nil {
			return nil, err
		}
		switch p := m.GetPart().(type) {
		case *controllerv1.SaveSnapshotResponse_Header:
			hdr = p.Header
		case *controllerv1.SaveSnapshotResponse_Chunk:
			if hdr == nil {
				return nil, errors.New("the controller sent state before its header")
			}
			h.Write(p.Chunk)
			size += uint64(len(p.Chunk))
			if _, err := w.Write(p.Chunk); err != nil {
				return nil, err
			}
		case *controllerv1.SaveSnapshotResponse_Trailer:
			if hdr == nil {
				return nil, errors.New("the controller sent no header")
			}
			if p.Trailer.GetSize() != size || !bytes.Equal(p.Trailer.GetSha256(), h.Sum(nil)) {
				return nil, fmt.Errorf("the state received (%d bytes) does not match the controller's checksum (%d bytes): nothing was saved", size, p.Trailer.GetSize())
			}
			hdr.Sha256, hdr.Size = p.Trailer.GetSha256(), size
			hdr.AppliedIndex, hdr.Records = p.Trailer.GetAppliedIndex(), p.Trailer.GetRecords()
			return hdr, nil
		}
	}
}
