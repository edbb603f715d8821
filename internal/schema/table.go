package schema

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// Reader is what the accessors read from: a raftstore.Snapshot or a
// raftstore.Store (its latest snapshot), or the deploy service's Store.
type Reader interface {
	Get(table, key string) (raftstore.Record, bool)
	List(table, prefix string) []raftstore.Record
}

var (
	_ Reader = (*raftstore.Snapshot)(nil)
	_ Reader = (*raftstore.Store)(nil)
)

// Table is one table of the store whose values are M messages.
type Table[M proto.Message] struct{ name string }

// Row is one decoded record of a table.
type Row[M proto.Message] struct {
	Key   string
	Value M
	// Version is the index of the write that last changed the record (what
	// IfVersion compares against); Created the one that created it.
	Version, Created uint64
}

// Name is the table's name in the store.
func (t Table[M]) Name() string { return t.name }

// Decode decodes one of the table's records. Values are written only
// through Put and Append, from messages of type M: a value that does not
// decode is a bug, the same on every replica, so Decode panics rather than
// let replicas act on a guess.
func (t Table[M]) Decode(rec raftstore.Record) M {
	var zero M
	m := zero.ProtoReflect().Type().New().Interface().(M)
	if err := proto.Unmarshal(rec.Value, m); err != nil {
		panic(fmt.Sprintf("schema: decode %s/%s: %v", t.name, rec.Key, err))
	}
	return m
}

// Get reads and decodes the record under key: ok is false when there is
// none.
func (t Table[M]) Get(r Reader, key string) (m M, version uint64, ok bool) {
	rec, ok := r.Get(t.name, key)
	if !ok {
		return m, 0, false
	}
	return t.Decode(rec), rec.ModifyIndex, true
}

// Has reports whether a record is stored under key, without decoding it.
func (t Table[M]) Has(r Reader, key string) bool {
	_, ok := r.Get(t.name, key)
	return ok
}

// Version returns the version of the record under key (0 when absent),
// without decoding it.
func (t Table[M]) Version(r Reader, key string) uint64 {
	rec, _ := r.Get(t.name, key)
	return rec.ModifyIndex
}

// Raw lists the records whose key starts with prefix, sorted by key,
// undecoded: for callers that look at keys and versions only.
func (t Table[M]) Raw(r Reader, prefix string) []raftstore.Record { return r.List(t.name, prefix) }

// List reads and decodes the records whose key starts with prefix, sorted
// by key. An empty prefix lists the whole table.
func (t Table[M]) List(r Reader, prefix string) []Row[M] {
	recs := r.List(t.name, prefix)
	out := make([]Row[M], len(recs))
	for i, rec := range recs {
		out[i] = Row[M]{Key: rec.Key, Value: t.Decode(rec), Version: rec.ModifyIndex, Created: rec.CreateIndex}
	}
	return out
}

// Values is List without keys and versions.
func (t Table[M]) Values(r Reader, prefix string) []M {
	recs := r.List(t.name, prefix)
	out := make([]M, len(recs))
	for i, rec := range recs {
		out[i] = t.Decode(rec)
	}
	return out
}

func encode(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("schema: encode %T: %v", m, err)) // only on a programming error
	}
	return b
}

// Put is the mutation storing m under key.
func (t Table[M]) Put(key string, m M) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Put{Put: &raftcmdv1.Put{Table: t.name, Key: key, Value: encode(m)}}}
}

// Append is the mutation appending m under the next key in log order.
func (t Table[M]) Append(m M) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: t.name, Value: encode(m)}}}
}

// Delete is the mutation deleting the record under key.
func (t Table[M]) Delete(key string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Delete{Delete: &raftcmdv1.Delete{Table: t.name, Key: key}}}
}

// DeletePrefix is the mutation deleting every record whose key starts with
// prefix.
func (t Table[M]) DeletePrefix(prefix string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_DeletePrefix{DeletePrefix: &raftcmdv1.DeletePrefix{Table: t.name, Prefix: prefix}}}
}

// IfVersion is the precondition that the record under key is still at
// version (a read-modify-write).
func (t Table[M]) IfVersion(key string, version uint64) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: t.name, Key: key, Check: &raftcmdv1.Precondition_Version{Version: version}}
}

// IfAbsent is the precondition that no record is stored under key.
func (t Table[M]) IfAbsent(key string) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: t.name, Key: key, Check: &raftcmdv1.Precondition_Absent{Absent: true}}
}

// IfPresent is the precondition that a record is stored under key.
func (t Table[M]) IfPresent(key string) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: t.name, Key: key, Check: &raftcmdv1.Precondition_Present{Present: true}}
}
