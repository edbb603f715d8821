// Package auditchain is the audit history's hash chain, shared by the
// store that builds it (internal/raftstore, inside the state machine) and
// the clients that check it (`kctl audit verify`): the link hash, the
// checkpoint that anchors the chain once retention drops old links, and
// Verify. It links no server code.
//
// Link i stores (seq_i, prev_i, value_i, hash_i) with
//
//	hash_i = SHA-256("kctl-chain-v1\x00" ‖ be64(seq_i) ‖ prev_i ‖ be64(len(value_i)) ‖ value_i)
//	prev_i = hash_{i-1}, seq_i = seq_{i-1}+1
//
// and the first link follows the genesis (seq 0, 32 zero bytes) or, after
// retention, the checkpoint (the last dropped link's seq and hash, signed
// by the cluster CA key).
package auditchain

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Genesis is the hash before the first link.
var Genesis = make([]byte, sha256.Size)

// LinkHash is the hash of a link.
func LinkHash(seq uint64, prev, value []byte) []byte {
	h := sha256.New()
	h.Write([]byte("kctl-chain-v1\x00"))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], seq)
	h.Write(n[:])
	h.Write(prev)
	binary.BigEndian.PutUint64(n[:], uint64(len(value)))
	h.Write(n[:])
	h.Write(value)
	return h.Sum(nil)
}

// Link is one link of a chain, as stored.
type Link struct {
	Seq        uint64
	Prev, Hash []byte
	Value      []byte
}

// Checkpoint anchors a chain whose oldest links were dropped: the last
// dropped link's seq and hash, how many were dropped, when.
type Checkpoint struct {
	Seq        uint64
	Hash       []byte
	Dropped    uint64
	UnixMillis int64
	Signature  []byte
}

// CheckpointDigest is what the checkpoint's signature signs.
func CheckpointDigest(c Checkpoint) []byte {
	h := sha256.New()
	h.Write([]byte("kctl-chain-checkpoint-v1\x00"))
	var n [8]byte
	for _, v := range []uint64{c.Seq, c.Dropped, uint64(c.UnixMillis)} {
		binary.BigEndian.PutUint64(n[:], v)
		h.Write(n[:])
	}
	h.Write(c.Hash)
	return h.Sum(nil)
}

// ErrBroken is wrapped by every verification failure.
var ErrBroken = errors.New("audit chain broken")

// BrokenError names the first link that does not match.
type BrokenError struct {
	Seq    uint64 // the link's sequence number (0: the checkpoint)
	Reason string
}

func (e *BrokenError) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("%v: checkpoint: %s", ErrBroken, e.Reason)
	}
	return fmt.Sprintf("%v at entry %d: %s", ErrBroken, e.Seq, e.Reason)
}

func (e *BrokenError) Unwrap() error { return ErrBroken }

// Verify checks links (oldest first) against the checkpoint (nil when no
// link was ever dropped) and, if key is not nil, the checkpoint's signature.
// It returns a *BrokenError naming the first link that does not match: a
// link whose hash is not the hash of its content, or that does not follow
// the link (or checkpoint) before it.
func Verify(links []Link, cp *Checkpoint, key *ecdsa.PublicKey) error {
	seq, prev := uint64(0), Genesis
	if cp != nil {
		if key != nil && !ecdsa.VerifyASN1(key, CheckpointDigest(*cp), cp.Signature) {
			return &BrokenError{Reason: "signature does not verify with the cluster CA key"}
		}
		if len(cp.Hash) != sha256.Size {
			return &BrokenError{Reason: "hash is not 32 bytes"}
		}
		seq, prev = cp.Seq, cp.Hash
	}
	for _, l := range links {
		switch {
		case l.Seq != seq+1:
			return &BrokenError{Seq: l.Seq, Reason: fmt.Sprintf("sequence number follows %d (an entry is missing or out of order)", seq)}
		case !bytes.Equal(l.Prev, prev):
			return &BrokenError{Seq: l.Seq, Reason: fmt.Sprintf("previous hash %s is not the hash %s of entry %d", short(l.Prev), short(prev), seq)}
		case !bytes.Equal(LinkHash(l.Seq, l.Prev, l.Value), l.Hash):
			return &BrokenError{Seq: l.Seq, Reason: "its content does not match its hash (the entry was changed)"}
		}
		seq, prev = l.Seq, l.Hash
	}
	return nil
}

func short(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

// Diverge returns the first sequence number both chains hold with different
// hashes (0 when they agree where they overlap): two controllers' copies of
// one chain must agree, so a copy rebuilt from an edited Raft log, which
// verifies on its own, still shows.
func Diverge(a, b []Link) uint64 {
	hashes := make(map[uint64][]byte, len(a))
	for _, l := range a {
		hashes[l.Seq] = l.Hash
	}
	for _, l := range b {
		if h, ok := hashes[l.Seq]; ok && !bytes.Equal(h, l.Hash) {
			return l.Seq
		}
	}
	return 0
}
