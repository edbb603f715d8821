package schema_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// memReader is a Reader over a fixed set of records.
type memReader []raftstore.Record

func (m memReader) Get(table, key string) (raftstore.Record, bool) {
	for _, r := range m {
		if r.Table == table && r.Key == key {
			return r, true
		}
	}
	return raftstore.Record{}, false
}

func (m memReader) List(table, prefix string) []raftstore.Record {
	var out []raftstore.Record
	for _, r := range m {
		if r.Table == table && strings.HasPrefix(r.Key, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// record is what the FSM stores for a Put mutation.
func record(t *testing.T, index uint64, put func() []byte, table, key string) raftstore.Record {
	t.Helper()
	return raftstore.Record{Table: table, Key: key, Value: put(), CreateIndex: index, ModifyIndex: index}
}

func TestTable_PutThenGet(t *testing.T) {
	step := &deployv1.StepRecord{DeployId: "d1", StepId: "boot/web/h1", Error: "boom"}
	m := schema.Steps.Put(schema.StepKey("d1", "boot/web/h1"), step)
	if got, want := m.GetPut().GetTable(), "deploy-steps"; got != want {
		t.Fatalf("Put table = %q, want %q", got, want)
	}
	r := memReader{record(t, 7, m.GetPut().GetValue, m.GetPut().GetTable(), m.GetPut().GetKey())}
	got, version, ok := schema.Steps.Get(r, "d1/boot/web/h1")
	if !ok || version != 7 || !proto.Equal(got, step) {
		t.Errorf("Get = %v, %d, %v; want %v, 7, true", got, version, ok, step)
	}
	if _, _, ok := schema.Steps.Get(r, "d2/x"); ok {
		t.Error("Get of an absent key reported a record")
	}
	rows := schema.Steps.List(r, schema.StepKey("d1", ""))
	if len(rows) != 1 || rows[0].Key != "d1/boot/web/h1" || rows[0].Version != 7 || !proto.Equal(rows[0].Value, step) {
		t.Errorf("List = %v, want the one step", rows)
	}
	if !schema.Steps.Has(r, "d1/boot/web/h1") || schema.Steps.Has(r, "nope") {
		t.Error("Has disagrees with Get")
	}
}

func TestTable_DecodePanicsOnAForeignValue(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Decode of an undecodable value did not panic")
		}
	}()
	schema.Deploys.Decode(raftstore.Record{Table: "deploys", Key: "x", Value: []byte{0xff, 0xff}})
}
