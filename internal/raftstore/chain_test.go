package raftstore

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/auditchain"
)

func chained(table, value string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: table, Value: []byte(value), Chain: true}}}
}

// Chained appends are linked in the state machine: consecutive sequence
// numbers, each link's prev_hash the hash of the one before (the genesis
// first), each hash over the link's content; a rejected command advances
// nothing; the head survives a snapshot and restore; and the chain
// verifies.
func TestFSM_ChainedAppend(t *testing.T) {
	h := newHarness(t)
	for i := range 4 {
		h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{chained("log", fmt.Sprintf("a%d", i)), chained("log", fmt.Sprintf("b%d", i))}})
	}
	// A failed precondition appends nothing and leaves the head alone.
	h.apply(&raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{pPresent("x", "y")}, Mutations: []*raftcmdv1.Mutation{chained("log", "never")}})
	links := func(v *Snapshot) []auditchain.Link {
		var out []auditchain.Link
		for _, r := range v.List("log", "") {
			l := new(raftcmdv1.ChainLink)
			if err := proto.Unmarshal(r.Value, l); err != nil {
				t.Fatal(err)
			}
			out = append(out, auditchain.Link{Seq: l.GetSeq(), Prev: l.GetPrevHash(), Value: l.GetValue(), Hash: l.GetHash()})
		}
		return out
	}
	got := links(h.view())
	if len(got) != 8 {
		t.Fatalf("%d links, want 8", len(got))
	}
	prev := auditchain.Genesis
	for i, l := range got {
		if l.Seq != uint64(i+1) || !bytes.Equal(l.Prev, prev) || !bytes.Equal(l.Hash, auditchain.LinkHash(l.Seq, l.Prev, l.Value)) {
			t.Fatalf("link %d = %+v, want seq %d after %x", i, l, i+1, prev)
		}
		prev = l.Hash
	}
	if err := auditchain.Verify(got, nil, nil); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	// Snapshot and restore into a fresh FSM: same head, the chain goes on.
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, h.f.state()); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t)
	if err := h2.f.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	h2.index = h.index
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{chained("log", "c")}})
	h2.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{chained("log", "c")}})
	if stateHash(h.f.state()) != stateHash(h2.f.state()) {
		t.Error("a restored FSM chains differently")
	}
	if all := links(h2.view()); len(all) != 9 || all[8].Seq != 9 || auditchain.Verify(all, nil, nil) != nil {
		t.Errorf("after restore: %d links, last %+v", len(all), all[len(all)-1])
	}
	// Changing one link's content is named.
	got[3].Value = []byte("changed")
	var be *auditchain.BrokenError
	if err := auditchain.Verify(got, nil, nil); !errorsAs(err, &be) || be.Seq != 4 {
		t.Errorf("Verify(changed link 4) = %v, want broken at 4", err)
	}
}

func errorsAs(err error, target **auditchain.BrokenError) bool {
	b, ok := err.(*auditchain.BrokenError)
	if ok {
		*target = b
	}
	return ok
}
