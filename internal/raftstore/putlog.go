package raftstore

import "sync"

// putLogSize is how many recent puts the put log keeps.
const putLogSize = 16384

// putLog remembers the keys written by recent applies, so a reader can find
// what changed since an index without walking a whole table. It is derived
// local state, not replicated: each replica fills its own as it applies.
type putLog struct {
	mu sync.Mutex
	// floor: every put by an entry with a greater index is in entries.
	floor   uint64
	entries []putEntry
}

type putEntry struct {
	index      uint64
	table, key string
}

func (l *putLog) add(puts []putEntry) {
	if len(puts) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, puts...)
	if len(l.entries) > 2*putLogSize {
		drop := len(l.entries) - putLogSize
		l.floor = l.entries[drop-1].index
		l.entries = append([]putEntry(nil), l.entries[drop:]...)
	}
}

// reset forgets everything up to index (a restored snapshot).
func (l *putLog) reset(index uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.floor, l.entries = index, nil
}

func (l *putLog) since(table string, index uint64) ([]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index < l.floor {
		return nil, false
	}
	var keys []string
	for i := len(l.entries) - 1; i >= 0 && l.entries[i].index > index; i-- {
		if l.entries[i].table == table {
			keys = append(keys, l.entries[i].key)
		}
	}
	return keys, true
}

// PutSince returns the keys of table written (Put or Append) by log entries
// with an index greater than index and applied locally by now, newest
// first, possibly repeated. ok is false when the store no longer remembers
// that far back (it keeps the last 16384 puts, and none from before a
// restored snapshot): scan the table instead. Keys written after a View was
// taken may be included; deletes are not reported.
func (s *Store) PutSince(table string, index uint64) (keys []string, ok bool) {
	return s.fsm.puts.since(table, index)
}
