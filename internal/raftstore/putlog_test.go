package raftstore

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
)

func TestPutLog_KeysWrittenSinceAnIndex(t *testing.T) {
	h := newHarness(t)
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("cmds", "a", "1"), mPut("other", "x", "1")}}) // 1
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("cmds", "b", "1")}})                          // 2
	h.apply(&raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{pAbsent("cmds", "a")},
		Mutations: []*raftcmdv1.Mutation{mPut("cmds", "c", "1")}}) // 3: conflict, nothing written
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("cmds", "a", "2")}}) // 4

	for _, tc := range []struct {
		since uint64
		want  []string
	}{{0, []string{"a", "a", "b"}}, {1, []string{"a", "b"}}, {2, []string{"a"}}, {4, nil}} {
		got, ok := h.f.puts.since("cmds", tc.since)
		slices.Sort(got)
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("since(%d) = %v, %v; want %v, true", tc.since, got, ok, tc.want)
		}
	}
}

func TestPutLog_ForgetsOldPutsAndRestores(t *testing.T) {
	h := newHarness(t)
	for i := range 2*putLogSize + 1 {
		h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("cmds", fmt.Sprint(i), "1")}})
	}
	if _, ok := h.f.puts.since("cmds", 1); ok {
		t.Errorf("since(1) ok after %d puts, want false (forgotten)", 2*putLogSize+1)
	}
	last := h.index
	if got, ok := h.f.puts.since("cmds", last-1); !ok || len(got) != 1 {
		t.Errorf("since(last-1) = %v, %v; want one key", got, ok)
	}

	var buf bytes.Buffer
	if err := writeSnapshot(&buf, h.f.state()); err != nil {
		t.Fatal(err)
	}
	g := newFSM(nil)
	if err := g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.puts.since("cmds", last-1); ok {
		t.Errorf("since(last-1) ok after a restore at %d, want false", last)
	}
	if got, ok := g.puts.since("cmds", last); !ok || len(got) != 0 {
		t.Errorf("since(restored index) = %v, %v; want none, true", got, ok)
	}
}
