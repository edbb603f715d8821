package agent

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

func TestJournal_RunsEachIDOnceAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.bin")
	j, err := openJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	run := func(context.Context) (*agentv1.Result, bool) {
		runs.Add(1)
		return &agentv1.Result{Ok: true, Detail: "done"}, true
	}
	// Concurrent duplicates of one delivery run it once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if r := j.do(context.Background(), "cmd-1", run); r.GetDetail() != "done" {
				t.Errorf("do(cmd-1) = %v, want the recorded result", r)
			}
		})
	}
	wg.Wait()
	j.close()
	// A redelivery after an agent restart answers from the journal.
	j, err = openJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if r := j.do(context.Background(), "cmd-1", run); r.GetDetail() != "done" {
		t.Errorf("do(cmd-1) after restart = %v, want the recorded result", r)
	}
	if got := runs.Load(); got != 1 {
		t.Errorf("runs of cmd-1 = %d, want 1", got)
	}
	if n, _ := journalCount(path, "cmd-1"); n != 1 {
		t.Errorf("journal entries for cmd-1 = %d, want 1", n)
	}
}

func TestJournal_DoesNotRecordUnattemptedOperations(t *testing.T) {
	j, err := openJournal("", true)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	fail := func(context.Context) (*agentv1.Result, bool) {
		runs++
		return &agentv1.Result{Error: "engine unreachable"}, false
	}
	j.do(context.Background(), "cmd-2", fail)
	j.do(context.Background(), "cmd-2", fail)
	if runs != 2 {
		t.Errorf("runs of a command that could not be attempted = %d, want 2 (retried)", runs)
	}
}
