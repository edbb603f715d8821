package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/protocol"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// fsmHarness applies commands to a bare FSM, numbering entries from 1.
type fsmHarness struct {
	t     *testing.T
	f     *fsm
	index uint64
}

func newHarness(t *testing.T) *fsmHarness { return &fsmHarness{t: t, f: newFSM(nil)} }

func encode(t testing.TB, c *raftcmdv1.Command) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{entryCommand}, b...)
}

func (h *fsmHarness) apply(c *raftcmdv1.Command) *raftcmdv1.Result {
	h.t.Helper()
	return h.applyRaw(encode(h.t, c))
}

func (h *fsmHarness) applyRaw(data []byte) *raftcmdv1.Result {
	h.t.Helper()
	h.index++
	res, _ := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data}).(*raftcmdv1.Result)
	return res
}

func mPut(table, key, value string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Put{Put: &raftcmdv1.Put{Table: table, Key: key, Value: []byte(value)}}}
}

func pVersion(table, key string, v uint64) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: table, Key: key, Check: &raftcmdv1.Precondition_Version{Version: v}}
}

func pAbsent(table, key string) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: table, Key: key, Check: &raftcmdv1.Precondition_Absent{Absent: true}}
}

func pPresent(table, key string) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: table, Key: key, Check: &raftcmdv1.Precondition_Present{Present: true}}
}

func (h *fsmHarness) view() *Snapshot {
	st := h.f.state()
	return &Snapshot{records: st.records, index: st.index}
}

func TestFSM_Preconditions(t *testing.T) {
	h := newHarness(t)
	r := h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("apps", "web", "v1")}}) // index 1
	if !r.GetApplied() || r.GetIndex() != 1 {
		t.Fatalf("first put = %v, want applied at 1", r)
	}
	tests := []struct {
		name        string
		pre         *raftcmdv1.Precondition
		wantApplied bool
		wantWhy     string
	}{
		{"version matches", pVersion("apps", "web", 1), true, ""},
		{"stale version", pVersion("apps", "web", 1), false, "want version 1, have version 2"},
		{"version of absent", pVersion("apps", "db", 3), false, "want version 3, record absent"},
		{"version 0 means absent, record present", pVersion("apps", "web", 0), false, "want absent, have version 2"},
		{"version 0 means absent", pVersion("apps", "new", 0), true, ""},
		{"absent but present", pAbsent("apps", "web"), false, "want absent"},
		{"absent", pAbsent("apps", "other"), true, ""},
		{"present", pPresent("apps", "web"), true, ""},
		{"present but absent", pPresent("apps", "nope"), false, "want present, record absent"},
		{"other table", pAbsent("dbs", "web"), true, ""},
	}
	for _, tt := range tests {
		before := h.view()
		r := h.apply(&raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{tt.pre}, Mutations: []*raftcmdv1.Mutation{mPut("apps", "web", tt.name)}})
		if r.GetApplied() != tt.wantApplied || !strings.Contains(r.GetConflict(), tt.wantWhy) {
			t.Errorf("%s: Apply = applied %v conflict %q, want applied %v conflict containing %q", tt.name, r.GetApplied(), r.GetConflict(), tt.wantApplied, tt.wantWhy)
		}
		got, _ := h.view().Get("apps", "web")
		if tt.wantApplied {
			if string(got.Value) != tt.name || got.ModifyIndex != h.index || got.CreateIndex != 1 {
				t.Errorf("%s: record = %+v, want value %q modify %d create 1", tt.name, got, tt.name, h.index)
			}
		} else if old, _ := before.Get("apps", "web"); got.ModifyIndex != old.ModifyIndex {
			t.Errorf("%s: rejected command changed the record: %+v -> %+v", tt.name, old, got)
		}
	}
}

func TestFSM_AllOrNothing(t *testing.T) {
	h := newHarness(t)
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "a", "1")}})
	// Second precondition fails: no mutation may be applied.
	r := h.apply(&raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{pPresent("t", "a"), pAbsent("t", "a")},
		Mutations:     []*raftcmdv1.Mutation{mPut("t", "a", "2"), mPut("t", "b", "2")},
	})
	if r.GetApplied() || !strings.HasPrefix(r.GetConflict(), "precondition 1 (t/a)") {
		t.Fatalf("Apply = %v, want conflict on precondition 1", r)
	}
	if got, _ := h.view().Get("t", "a"); string(got.Value) != "1" {
		t.Errorf("t/a = %q after rejected command, want 1", got.Value)
	}
	if _, ok := h.view().Get("t", "b"); ok {
		t.Errorf("t/b exists after rejected command")
	}
	// Invalid committed command (empty table): rejected, not a panic.
	r = h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "c", "x"), mPut("", "c", "x")}})
	if r.GetApplied() || !strings.Contains(r.GetConflict(), "invalid command") {
		t.Fatalf("invalid command = %v, want rejected as invalid", r)
	}
	if _, ok := h.view().Get("t", "c"); ok {
		t.Errorf("t/c exists after invalid command")
	}
}

func TestFSM_MutationsInOrder(t *testing.T) {
	h := newHarness(t)
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{
		mPut("t", "a/1", "x"), mPut("t", "a/2", "x"), mPut("t", "b/1", "x"), mPut("u", "a/1", "x"),
	}})
	r := h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{
		{Op: &raftcmdv1.Mutation_DeletePrefix{DeletePrefix: &raftcmdv1.DeletePrefix{Table: "t", Prefix: "a/"}}},
		mPut("t", "a/3", "y"), // after the prefix delete: survives
		{Op: &raftcmdv1.Mutation_Delete{Delete: &raftcmdv1.Delete{Table: "t", Key: "missing"}}},
	}})
	if !r.GetApplied() {
		t.Fatalf("Apply = %v", r)
	}
	var keys []string
	for _, rec := range h.view().List("t", "") {
		keys = append(keys, rec.Key)
	}
	if got, want := strings.Join(keys, ","), "a/3,b/1"; got != want {
		t.Errorf("List(t) = %s, want %s", got, want)
	}
	if _, ok := h.view().Get("u", "a/1"); !ok {
		t.Errorf("DeletePrefix on t removed u/a/1")
	}
}

func TestFSM_AppendOrdering(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i := range 12 {
		ms := []*raftcmdv1.Mutation{}
		for j := range 11 {
			ms = append(ms, &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: "audit", Value: fmt.Appendf(nil, "%d.%d", i, j)}}})
			want = append(want, fmt.Sprintf("%d.%d", i, j))
		}
		r := h.apply(&raftcmdv1.Command{Mutations: ms})
		if len(r.GetAppendedKeys()) != 11 || r.GetAppendedKeys()[0] != AppendKey(h.index, 0) {
			t.Fatalf("appended keys = %v, want 11 starting %s", r.GetAppendedKeys(), AppendKey(h.index, 0))
		}
	}
	recs := h.view().List("audit", "")
	if len(recs) != len(want) {
		t.Fatalf("List(audit) has %d records, want %d", len(recs), len(want))
	}
	for i, rec := range recs {
		if string(rec.Value) != want[i] {
			t.Fatalf("List(audit)[%d] = %q, want %q (keys must sort in commit order)", i, rec.Value, want[i])
		}
	}
	if got := AppendKey(42, 3); got != "00000000000000000042-000003" {
		t.Errorf("AppendKey(42, 3) = %q", got)
	}
}

func TestFSM_RequestDedupe(t *testing.T) {
	h := newHarness(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	c := &raftcmdv1.Command{UnixNanos: now, RequestId: "req-1", Mutations: []*raftcmdv1.Mutation{
		{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: "q", Value: []byte("x")}}},
	}}
	first := h.apply(c)
	second := h.apply(c)
	if !proto.Equal(first, second) {
		t.Fatalf("retry result = %v, want the first result %v", second, first)
	}
	if n := len(h.view().List("q", "")); n != 1 {
		t.Fatalf("q has %d records after a retried append, want 1", n)
	}
	// A conflicting first result is remembered too.
	cas := &raftcmdv1.Command{UnixNanos: now, RequestId: "req-2", Preconditions: []*raftcmdv1.Precondition{pPresent("q", "nope")}, Mutations: []*raftcmdv1.Mutation{mPut("q", "nope", "x")}}
	r1 := h.apply(cas)
	h.apply(&raftcmdv1.Command{UnixNanos: now, Mutations: []*raftcmdv1.Mutation{mPut("q", "nope", "now present")}})
	if r2 := h.apply(cas); !proto.Equal(r1, r2) || r2.GetApplied() {
		t.Fatalf("retried CAS = %v, want the first (conflict) result %v", r2, r1)
	}
	// After the retention window the id is forgotten (pruned by later commands).
	later := now + int64(RequestRetention) + 1
	h.apply(&raftcmdv1.Command{UnixNanos: later, RequestId: "req-3", Mutations: []*raftcmdv1.Mutation{mPut("q", "z", "z")}})
	if _, ok := h.f.state().requests.Get([]byte("req-1")); ok {
		t.Errorf("req-1 still remembered after %v", RequestRetention)
	}
	if _, ok := h.f.state().requests.Get([]byte("req-3")); !ok {
		t.Errorf("req-3 not remembered")
	}
	if n := h.f.state().expiry.Len(); n != 1 {
		t.Errorf("expiry index has %d entries, want 1", n)
	}
}

func TestFSM_UndecodableEntryPanics(t *testing.T) {
	tests := map[string][]byte{
		"empty":            {},
		"garbage protobuf": {entryCommand, 0xff, 0xff, 0xff},
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			defer func() {
				if recover() == nil {
					t.Errorf("Apply(%x) did not panic", data)
				}
			}()
			h.applyRaw(data)
		})
	}
}

// withUnknown adds a field this build does not know (number 99), as a newer
// controller would write it.
func withUnknown[M proto.Message](m M) M {
	raw := protowire.AppendTag(nil, 99, protowire.BytesType)
	raw = protowire.AppendBytes(raw, []byte("future"))
	m.ProtoReflect().SetUnknown(raw)
	return m
}

func TestFSM_UnknownTypesPolicy(t *testing.T) {
	t.Run("ignorable entry type is skipped", func(t *testing.T) {
		h := newHarness(t)
		r := h.applyRaw([]byte{9 | entryIgnoreUnknown, 1, 2, 3})
		if r.GetApplied() || h.f.state().index != 1 {
			t.Errorf("ignorable entry: result %v index %d, want not applied, index 1", r, h.f.state().index)
		}
	})
	unknownPut := mPut("t", "b", "2")
	withUnknown(unknownPut.GetPut())
	cases := map[string]*raftcmdv1.Command{
		"unknown mutation op": {Mutations: []*raftcmdv1.Mutation{mPut("t", "a", "1"), withUnknown(&raftcmdv1.Mutation{})}},
		"unknown precondition check": {
			Preconditions: []*raftcmdv1.Precondition{withUnknown(&raftcmdv1.Precondition{Table: "t", Key: "a"})},
			Mutations:     []*raftcmdv1.Mutation{mPut("t", "a", "1")},
		},
		"unknown field in a put":     {Mutations: []*raftcmdv1.Mutation{mPut("t", "a", "1"), unknownPut}},
		"unknown field in a command": withUnknown(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "a", "1")}}),
	}
	t.Run("unknown entry type halts", func(t *testing.T) {
		h := newHarness(t)
		h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "before", "1")}})
		h.applyRaw([]byte{7, 1, 2})
		assertHalted(t, h, 1)
	})
	for name, c := range cases {
		t.Run(name+" halts", func(t *testing.T) {
			h := newHarness(t)
			h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "before", "1")}})
			h.apply(c)
			assertHalted(t, h, 1)
		})
		t.Run(name+" is refused by the leader", func(t *testing.T) {
			if err := checkCommand(c); err == nil {
				t.Errorf("checkCommand accepted it")
			}
		})
		t.Run(name+" with ignore_unknown is skipped", func(t *testing.T) {
			h := newHarness(t)
			c := proto.Clone(c).(*raftcmdv1.Command)
			c.IgnoreUnknown = true
			r := h.apply(c)
			if !r.GetApplied() {
				t.Fatalf("Apply = %v, want applied", r)
			}
			if _, ok := h.view().Get("t", "a"); !ok {
				t.Errorf("known mutation beside unknown content was not applied")
			}
		})
	}
}

func TestFSM_SnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UnixNano()
	for i := range 200 {
		id := ""
		if i%4 == 0 {
			id = fmt.Sprintf("r%d", i)
		}
		h.apply(&raftcmdv1.Command{UnixNanos: now, RequestId: id, Mutations: []*raftcmdv1.Mutation{
			mPut(fmt.Sprintf("t%d", i%3), fmt.Sprintf("k%03d", i), strings.Repeat("v", i)),
			{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: "log", Value: []byte{byte(i)}}}},
		}})
	}
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("bin", "k\x00with-nul", "\x00\xff")}})

	var first bytes.Buffer
	snap, _ := h.f.Snapshot()
	if err := writeSnapshot(&first, snap.(*fsmSnapshot).st); err != nil {
		t.Fatal(err)
	}
	// Writes after Snapshot() must not leak into the captured state.
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t0", "late", "x")}})
	var again bytes.Buffer
	if err := writeSnapshot(&again, snap.(*fsmSnapshot).st); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), again.Bytes()) {
		t.Fatalf("snapshot changed after a later apply")
	}

	g := newFSM(nil)
	if err := g.Restore(nopCloser{bytes.NewReader(first.Bytes())}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := stateHash(g.state()), stateHash(snap.(*fsmSnapshot).st); got != want {
		t.Fatalf("restored state hash %x, want %x", got[:8], want[:8])
	}
	if g.state().index != 201 || g.state().records.Len() != 401 || g.state().requests.Len() != 50 || g.state().expiry.Len() != 50 {
		t.Fatalf("restored index %d records %d requests %d expiry %d, want 201, 401, 50, 50",
			g.state().index, g.state().records.Len(), g.state().requests.Len(), g.state().expiry.Len())
	}
	rec, ok := (&Snapshot{records: g.state().records}).Get("bin", "k\x00with-nul")
	if !ok || string(rec.Value) != "\x00\xff" || rec.CreateIndex != 201 {
		t.Errorf("restored bin record = %+v %v", rec, ok)
	}
	// Dedupe survives a restore.
	h2 := &fsmHarness{t: t, f: g, index: 201}
	r := h2.apply(&raftcmdv1.Command{UnixNanos: now, RequestId: "r8", Mutations: []*raftcmdv1.Mutation{mPut("t0", "x", "x")}})
	if r.GetIndex() != 9 {
		t.Errorf("retried r8 after restore = %v, want first result (index 9)", r)
	}

	for name, data := range map[string][]byte{
		"bad magic": []byte("NOTASNAP"),
		"truncated": first.Bytes()[:first.Len()/2],
		"trailing":  append(bytes.Clone(first.Bytes()), 0),
	} {
		if err := newFSM(nil).Restore(nopCloser{bytes.NewReader(data)}); err == nil {
			t.Errorf("Restore(%s) succeeded, want error", name)
		}
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// assertHalted checks that h's FSM halted asking for an upgrade, holds the
// state of the first good entries (index good), applies nothing more and
// refuses to snapshot.
func assertHalted(t *testing.T, h *fsmHarness, good uint64) {
	t.Helper()
	err := h.f.haltErr()
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(fmt.Sprint(err), "upgrade this controller") {
		t.Fatalf("haltErr() = %v, want ErrIncompatible asking for an upgrade", err)
	}
	if got := h.f.state().index; got != good {
		t.Errorf("state index = %d, want %d (the last entry applied before the halt)", got, good)
	}
	if r := h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "after", "1")}}); r != nil {
		t.Errorf("Apply after the halt = %v, want nil (not applied)", r)
	}
	if _, ok := h.view().Get("t", "after"); ok {
		t.Errorf("an entry after the halt was applied")
	}
	if _, ok := h.view().Get("t", "a"); ok {
		t.Errorf("the refused entry was (partly) applied")
	}
	if _, err := h.f.Snapshot(); err == nil {
		t.Errorf("Snapshot() of a halted FSM succeeded; want an error (its state lags the log)")
	}
}

func TestFSM_NewerFormatHalts(t *testing.T) {
	h := newHarness(t)
	h.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "before", "1")}})
	// The current format applies.
	if r := h.apply(&raftcmdv1.Command{Format: uint32(protocol.Current()), Mutations: []*raftcmdv1.Mutation{mPut("t", "current", "1")}}); !r.GetApplied() {
		t.Fatalf("format %d: %v, want applied", protocol.Current(), r)
	}
	h.apply(&raftcmdv1.Command{Format: uint32(protocol.Current() + 1), Mutations: []*raftcmdv1.Mutation{mPut("t", "a", "1")}})
	assertHalted(t, h, 2)
	if err := checkFormat(&raftcmdv1.Command{Format: uint32(protocol.Current() + 1)}); err == nil {
		t.Errorf("checkFormat accepted a newer format: the leader would propose it")
	}

	// A snapshot this build reads (from an upgraded leader, or a restore)
	// replaces the state and lifts the halt.
	var buf bytes.Buffer
	g := newHarness(t)
	g.apply(&raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{mPut("t", "x", "1")}})
	if err := writeSnapshot(&buf, g.f.state()); err != nil {
		t.Fatal(err)
	}
	if err := h.f.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if err := h.f.haltErr(); err != nil {
		t.Errorf("still halted after a restore: %v", err)
	}
}

func TestFSM_NewerSnapshotFormatRefused(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	if _, err := protodelim.MarshalTo(&buf, &raftcmdv1.SnapshotHeader{Format: snapshotFormat + 1}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	err := h.f.Restore(nopCloser{bytes.NewReader(buf.Bytes())})
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "upgrade this controller") {
		t.Fatalf("Restore(format %d) = %v, want ErrIncompatible asking for an upgrade", snapshotFormat+1, err)
	}
	if h.f.haltErr() == nil {
		t.Errorf("not halted after refusing a newer snapshot")
	}
}
