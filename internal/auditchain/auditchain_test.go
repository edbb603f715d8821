package auditchain_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/kctl-dev/kctl/internal/auditchain"
)

// chain builds n links after (seq, prev).
func chain(seq uint64, prev []byte, n int) []auditchain.Link {
	var out []auditchain.Link
	for range n {
		seq++
		v := fmt.Appendf(nil, "entry %d", seq)
		h := auditchain.LinkHash(seq, prev, v)
		out = append(out, auditchain.Link{Seq: seq, Prev: prev, Value: v, Hash: h})
		prev = h
	}
	return out
}

func brokenAt(err error) uint64 {
	var be *auditchain.BrokenError
	if !errors.As(err, &be) {
		return ^uint64(0)
	}
	return be.Seq
}

// Verify names the first link that does not match, whatever was done to
// the chain; a checkpoint anchors a chain whose head was dropped, and its
// signature must be the CA key's.
func TestVerify(t *testing.T) {
	good := chain(0, auditchain.Genesis, 6)
	if err := auditchain.Verify(good, nil, nil); err != nil {
		t.Fatalf("Verify(good) = %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func([]auditchain.Link) []auditchain.Link
		want   uint64
	}{
		{"changed content", func(l []auditchain.Link) []auditchain.Link { l[2].Value = []byte("other"); return l }, 3},
		{"changed content, hash recomputed", func(l []auditchain.Link) []auditchain.Link {
			l[2].Value = []byte("other")
			l[2].Hash = auditchain.LinkHash(l[2].Seq, l[2].Prev, l[2].Value)
			return l
		}, 4},
		{"dropped entry", func(l []auditchain.Link) []auditchain.Link { return slices.Delete(l, 3, 4) }, 5},
		{"swapped entries", func(l []auditchain.Link) []auditchain.Link { l[1], l[2] = l[2], l[1]; return l }, 3},
		{"dropped head without a checkpoint", func(l []auditchain.Link) []auditchain.Link { return l[2:] }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := brokenAt(auditchain.Verify(tc.mutate(slices.Clone(good)), nil, nil)); got != tc.want {
				t.Errorf("broken at %d, want %d", got, tc.want)
			}
		})
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cp := auditchain.Checkpoint{Seq: good[1].Seq, Hash: good[1].Hash, Dropped: 2, UnixMillis: 1}
	cp.Signature, _ = ecdsa.SignASN1(rand.Reader, key, auditchain.CheckpointDigest(cp))
	if err := auditchain.Verify(good[2:], &cp, &key.PublicKey); err != nil {
		t.Errorf("Verify(after checkpoint) = %v", err)
	}
	forged := cp
	forged.Dropped = 3
	if got := brokenAt(auditchain.Verify(good[2:], &forged, &key.PublicKey)); got != 0 {
		t.Errorf("Verify(forged checkpoint) broken at %d, want the checkpoint (0)", got)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if got := brokenAt(auditchain.Verify(good[2:], &cp, &other.PublicKey)); got != 0 {
		t.Errorf("Verify(another key) broken at %d, want the checkpoint (0)", got)
	}
}

// Diverge finds where two copies of a chain part, over the entries both
// hold.
func TestDiverge(t *testing.T) {
	a := chain(0, auditchain.Genesis, 5)
	if got := auditchain.Diverge(a, a[:3]); got != 0 {
		t.Errorf("Diverge(a, a prefix) = %d, want 0", got)
	}
	rebuilt := append(slices.Clone(a[:2]), rebuild(a[2:], a[1].Hash)...)
	if got := auditchain.Diverge(a, rebuilt); got != 3 {
		t.Errorf("Diverge(a, rebuilt from 3) = %d, want 3", got)
	}
}

// rebuild re-links links after prev with the first one's content changed,
// as a replica replaying an edited log would.
func rebuild(links []auditchain.Link, prev []byte) []auditchain.Link {
	out := slices.Clone(links)
	out[0].Value = []byte("edited")
	for i := range out {
		out[i].Prev = prev
		out[i].Hash = auditchain.LinkHash(out[i].Seq, prev, out[i].Value)
		prev = out[i].Hash
	}
	return out
}
