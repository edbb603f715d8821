package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"google.golang.org/protobuf/encoding/protodelim"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
)

// journalCap bounds how many completed commands the journal remembers.
// Controllers garbage-collect finished commands long before an agent would
// see a redelivery of one this old.
const journalCap = 10000

// journal remembers completed commands and their results, in memory and in
// an append-only file of length-delimited CommandResult messages, so a
// redelivered command is answered without running it again, even across
// agent restarts.
type journal struct {
	// mu guards every field below.
	mu      sync.Mutex
	done    map[string]*agentv1.Result
	order   []string
	running map[string]chan struct{}
	f       *os.File // nil when in memory only
	path    string
}

func openJournal(path string, inMemory bool) (*journal, error) {
	j := &journal{done: map[string]*agentv1.Result{}, running: map[string]chan struct{}{}, path: path}
	if inMemory {
		return j, nil
	}
	if f, err := os.Open(path); err == nil {
		r := bufio.NewReader(f)
		for {
			var cr agentv1.CommandResult
			if err := (protodelim.UnmarshalOptions{MaxSize: 64 << 20}).UnmarshalFrom(r, &cr); err != nil {
				break // EOF, or a record torn by a crash: ignore the tail
			}
			j.remember(cr.GetId(), cr.GetResult())
		}
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// Rewrite the journal compactly (drops a torn tail and old entries).
	var buf bytes.Buffer
	for _, id := range j.order {
		if _, err := protodelim.MarshalTo(&buf, &agentv1.CommandResult{Id: id, Result: j.done[id]}); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	j.f = f
	return j, err
}

// remember records a result in memory. Callers hold mu (or own j).
func (j *journal) remember(id string, r *agentv1.Result) {
	if _, ok := j.done[id]; !ok {
		j.order = append(j.order, id)
	}
	j.done[id] = r
	for len(j.order) > journalCap {
		delete(j.done, j.order[0])
		j.order = j.order[1:]
	}
}

// do runs fn once per id and returns its result; a repeat (or a concurrent
// duplicate) gets the recorded result. fn reports whether its result is final
// (attempted): results of operations that could not be attempted are not
// journaled, so a redelivery tries again.
func (j *journal) do(ctx context.Context, id string, fn func(context.Context) (*agentv1.Result, bool)) *agentv1.Result {
	for {
		j.mu.Lock()
		if r, ok := j.done[id]; ok {
			j.mu.Unlock()
			return r
		}
		ch, busy := j.running[id]
		if !busy {
			ch = make(chan struct{})
			j.running[id] = ch
			j.mu.Unlock()
			break
		}
		j.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return &agentv1.Result{Error: "agent: stopped while the command was running"}
		}
		j.mu.Lock()
		r, ok := j.done[id]
		j.mu.Unlock()
		if ok {
			return r
		}
	}
	r, final := fn(ctx)
	j.mu.Lock()
	defer j.mu.Unlock()
	if final {
		j.remember(id, r)
		if j.f != nil {
			_, _ = protodelim.MarshalTo(j.f, &agentv1.CommandResult{Id: id, Result: r})
			_ = j.f.Sync()
		}
	}
	close(j.running[id])
	delete(j.running, id)
	return r
}

// count reports how many results are recorded for id in the on-disk journal
// file at path (tests use it as an effect counter).
func journalCount(path, id string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	n := 0
	for {
		var cr agentv1.CommandResult
		if err := (protodelim.UnmarshalOptions{MaxSize: 64 << 20}).UnmarshalFrom(r, &cr); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, nil
		}
		if cr.GetId() == id {
			n++
		}
	}
}

func (j *journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}
