package chaos

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestLockModel checks the checker: histories that are linearizable pass,
// a doubly held lock, a stale status and a release of a free lock do not.
func TestLockModel(t *testing.T) {
	acq := func(c int, msg string, call, ret int64, kind string) op {
		return op{Client: c, In: lockInput{Op: "acquire", Msg: msg, Node: "c1"}, Out: lockOutput{Kind: kind}, Call: call, Return: ret}
	}
	rel := func(c int, call, ret int64, kind string) op {
		return op{Client: c, In: lockInput{Op: "release", Node: "c1"}, Out: lockOutput{Kind: kind}, Call: call, Return: ret}
	}
	st := func(c int, call, ret int64, holder string) op {
		return op{Client: c, In: lockInput{Op: "status", Node: "c2"}, Out: lockOutput{Kind: "ok", Holder: holder}, Call: call, Return: ret}
	}
	for _, tc := range []struct {
		name  string
		ops   []op
		legal bool
		stale bool
	}{
		{"sequential", []op{acq(0, "a", 0, 1, "ok"), st(1, 2, 3, "a"), acq(1, "b", 4, 5, "held"), rel(1, 6, 7, "ok"), st(0, 8, 9, "")}, true, false},
		{"concurrent acquires, one wins", []op{acq(0, "a", 0, 10, "ok"), acq(1, "b", 1, 9, "held"), st(2, 11, 12, "a")}, true, false},
		{"unknown acquire may have happened", []op{acq(0, "a", 0, 1, "unknown"), st(1, 2, 3, "a"), rel(1, 4, 5, "ok")}, true, false},
		{"unknown acquire may not have happened", []op{acq(0, "a", 0, 1, "unknown"), st(1, 2, 3, ""), acq(1, "b", 4, 5, "ok")}, true, false},
		{"held twice", []op{acq(0, "a", 0, 1, "ok"), acq(1, "b", 2, 3, "ok")}, false, false},
		{"release of a free lock", []op{rel(0, 0, 1, "ok")}, false, false},
		{"none while held", []op{acq(0, "a", 0, 1, "ok"), rel(1, 2, 3, "none")}, false, false},
		{"stale status", []op{acq(0, "a", 0, 1, "ok"), rel(0, 2, 3, "ok"), acq(1, "b", 4, 5, "ok"), st(2, 6, 7, "a")}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &history{t0: time.Now(), ops: tc.ops}
			res := porcupine.CheckOperationsTimeout(lockModel.ToModel(), h.operations(), 10*time.Second)
			if want := map[bool]porcupine.CheckResult{true: porcupine.Ok, false: porcupine.Illegal}[tc.legal]; res != want {
				t.Errorf("porcupine = %s, want %s", res, want)
			}
			if got := len(h.staleReads()) > 0; got != tc.stale {
				t.Errorf("staleReads = %v, want stale %v", h.staleReads(), tc.stale)
			}
		})
	}
}
