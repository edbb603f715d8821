package clock_test

import (
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/clock"
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func fired(ch <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestFake_TickerFiresOncePerAdvancePastItsPeriod(t *testing.T) {
	f := clock.NewFake(epoch)
	tk := f.NewTicker(time.Minute)
	f.Advance(59 * time.Second)
	if fired(tk.C()) {
		t.Fatal("ticker fired before its period")
	}
	f.Advance(time.Second)
	if !fired(tk.C()) {
		t.Fatal("ticker did not fire at its period")
	}
	// An hour at once: one tick (missed ones are dropped), then the next
	// is a full period after the new time.
	f.Advance(time.Hour)
	if !fired(tk.C()) || fired(tk.C()) {
		t.Fatal("Advance(1h) did not fire exactly one tick")
	}
	f.Advance(30 * time.Second)
	if fired(tk.C()) {
		t.Fatal("ticker fired early after a long advance")
	}
	if got, want := f.Now(), epoch.Add(time.Minute+time.Hour+30*time.Second); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
	tk.Stop()
	if f.Waiters() != 0 {
		t.Errorf("Waiters() after Stop = %d, want 0", f.Waiters())
	}
	f.Advance(time.Hour)
	if fired(tk.C()) {
		t.Error("a stopped ticker fired")
	}
}

func TestFake_AfterFiresOnceAtItsDeadline(t *testing.T) {
	f := clock.NewFake(epoch)
	ch := f.After(10 * time.Second)
	if f.Waiters() != 1 {
		t.Fatalf("Waiters() = %d, want 1", f.Waiters())
	}
	f.Set(epoch.Add(9 * time.Second))
	if fired(ch) {
		t.Fatal("After fired early")
	}
	f.Set(epoch) // backwards: ignored
	if got := f.Now(); !got.Equal(epoch.Add(9 * time.Second)) {
		t.Fatalf("Set moved the clock backwards to %v", got)
	}
	f.Advance(time.Second)
	select {
	case at := <-ch:
		if !at.Equal(epoch.Add(10 * time.Second)) {
			t.Errorf("After sent %v, want the deadline", at)
		}
	default:
		t.Fatal("After did not fire at its deadline")
	}
	if f.Waiters() != 0 {
		t.Errorf("Waiters() after firing = %d, want 0", f.Waiters())
	}
	if !fired(f.After(0)) {
		t.Error("After(0) did not fire at once")
	}
}

func TestReal(t *testing.T) {
	c := clock.Or(nil)
	if _, ok := c.(clock.Real); !ok {
		t.Fatalf("Or(nil) = %T, want Real", c)
	}
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Errorf("Real.Now() is %v off", d)
	}
	tk := c.NewTicker(time.Millisecond)
	defer tk.Stop()
	select {
	case <-tk.C():
	case <-time.After(10 * time.Second):
		t.Fatal("Real ticker did not tick")
	}
	select {
	case <-c.After(time.Millisecond):
	case <-time.After(10 * time.Second):
		t.Fatal("Real.After did not fire")
	}
	f := clock.NewFake(epoch)
	if clock.Or(f) != f {
		t.Error("Or(fake) did not return the fake")
	}
}
