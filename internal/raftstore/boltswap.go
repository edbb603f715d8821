package raftstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// boltSwap is raft's log and stable store: raft-boltdb over raft.db, which
// rewrite can replace by a compacted copy while raft runs. bbolt never
// overwrites the pages a deletion frees (it reuses them later), so after
// Purge the deleted log entries would stay readable in raft.db until
// then; the compacted copy holds only live data.
type boltSwap struct {
	opts raftboltdb.Options
	// mu guards b: raft's calls hold it shared, rewrite exclusively.
	mu sync.RWMutex
	b  *raftboltdb.BoltStore
}

var (
	_ raft.LogStore    = (*boltSwap)(nil)
	_ raft.StableStore = (*boltSwap)(nil)
)

func openBoltSwap(opts raftboltdb.Options) (*boltSwap, error) {
	b, err := raftboltdb.New(opts)
	if err != nil {
		return nil, err
	}
	return &boltSwap{opts: opts, b: b}, nil
}

func (w *boltSwap) FirstIndex() (uint64, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.FirstIndex()
}

func (w *boltSwap) LastIndex() (uint64, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.LastIndex()
}

func (w *boltSwap) GetLog(idx uint64, l *raft.Log) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.GetLog(idx, l)
}

func (w *boltSwap) StoreLog(l *raft.Log) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.StoreLog(l)
}

func (w *boltSwap) StoreLogs(ls []*raft.Log) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.StoreLogs(ls)
}

func (w *boltSwap) DeleteRange(lo, hi uint64) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.DeleteRange(lo, hi)
}

func (w *boltSwap) Set(k, v []byte) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.Set(k, v)
}

func (w *boltSwap) Get(k []byte) ([]byte, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.Get(k)
}

func (w *boltSwap) SetUint64(k []byte, v uint64) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.SetUint64(k, v)
}

func (w *boltSwap) GetUint64(k []byte) (uint64, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.b.GetUint64(k)
}

func (w *boltSwap) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Close()
}

// rewrite replaces raft.db by a compacted copy of its live data (raft's
// log and stable-store calls wait meanwhile). On a failure before the
// rename the original file is opened again.
func (w *boltSwap) rewrite() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	path := w.opts.Path
	tmp := path + ".compact"
	if err := w.b.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	cerr := compactFile(path, tmp)
	if cerr == nil {
		if err := os.Rename(tmp, path); err != nil {
			cerr = err
		} else if d, err := os.Open(filepath.Dir(path)); err == nil {
			cerr = d.Sync()
			d.Close()
		}
	}
	os.Remove(tmp)
	b, err := raftboltdb.New(w.opts)
	if err != nil {
		// Raft cannot write its log any more: nothing sensible remains
		// but to report it (the node stops making progress).
		return fmt.Errorf("reopen %s after compaction: %w (compaction: %v)", path, err, cerr)
	}
	w.b = b
	if cerr != nil {
		return fmt.Errorf("compact %s: %w", path, cerr)
	}
	return nil
}

// compactFile copies the live data of the bbolt file src to a new file dst.
func compactFile(src, dst string) error {
	os.Remove(dst)
	from, err := bbolt.Open(src, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := bbolt.Open(dst, 0o600, nil)
	if err != nil {
		return err
	}
	if err := bbolt.Compact(to, from, 4<<20); err != nil {
		to.Close()
		return err
	}
	if err := to.Sync(); err != nil {
		to.Close()
		return err
	}
	return to.Close()
}
