package raftstore

import (
	"strings"

	iradix "github.com/hashicorp/go-immutable-radix"
)

// Record is one stored value. Value is shared with the store's immutable
// state: callers must not modify it.
type Record struct {
	Table, Key string
	Value      []byte
	// CreateIndex is the log index of the command that created the record,
	// ModifyIndex the one that last wrote it (the version preconditions
	// compare against).
	CreateIndex, ModifyIndex uint64
}

// state is one immutable version of the store. Every field is read-only once
// published; the FSM builds a new state per applied batch.
type state struct {
	// records maps tableKey(table, key) to *Record.
	records *iradix.Tree
	// requests maps request_id to *requestEntry (dedupe window).
	requests *iradix.Tree
	// expiry maps expiryKey(unix_nanos, request_id) to nil, ordering
	// requests by age for pruning.
	expiry *iradix.Tree
	// index is the last log index applied.
	index uint64
}

func emptyState() *state {
	return &state{records: iradix.New(), requests: iradix.New(), expiry: iradix.New()}
}

// tableKey is the radix key of a record: table names never contain NUL, so
// the encoding is unambiguous and a table's records are contiguous and
// sorted by key.
func tableKey(table, key string) []byte {
	b := make([]byte, 0, len(table)+1+len(key))
	b = append(b, table...)
	b = append(b, 0)
	return append(b, key...)
}

// Snapshot is an immutable, consistent read view of the store at one applied
// index. It is cheap to take and safe for concurrent use.
type Snapshot struct {
	records *iradix.Tree
	index   uint64
}

// Index is the last log index applied to the state the view shows.
func (v *Snapshot) Index() uint64 { return v.index }

// Get returns the record stored under table/key.
func (v *Snapshot) Get(table, key string) (Record, bool) {
	if invalidTable(table) {
		return Record{}, false
	}
	r, ok := v.records.Get(tableKey(table, key))
	if !ok {
		return Record{}, false
	}
	return *r.(*Record), true
}

// List returns the records of table whose key starts with prefix, sorted by
// key. An empty prefix lists the whole table.
func (v *Snapshot) List(table, prefix string) []Record {
	if invalidTable(table) {
		return nil
	}
	var out []Record
	v.records.Root().WalkPrefix(tableKey(table, prefix), func(_ []byte, val interface{}) bool {
		out = append(out, *val.(*Record))
		return false
	})
	return out
}

// Each calls fn with every record of every table, sorted by table then
// key, until fn returns false: tests scan the whole state (that no table
// holds a secret, say) without knowing the tables.
func (v *Snapshot) Each(fn func(table string, r Record) bool) {
	v.records.Root().Walk(func(k []byte, val interface{}) bool {
		table, _, _ := strings.Cut(string(k), "\x00")
		return !fn(table, *val.(*Record))
	})
}

// Len returns the number of records in all tables.
func (v *Snapshot) Len() int { return v.records.Len() }

func invalidTable(table string) bool {
	return table == "" || strings.IndexByte(table, 0) >= 0
}
