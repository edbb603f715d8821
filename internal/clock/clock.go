// Package clock is the time source of the timers that guard safety: stale
// lock release and step deadlines (internal/deploy), command and token
// garbage collection, token expiry and certificate renewal
// (internal/controller, internal/agent). Production code takes a Clock in
// its config and uses Real when none is given; tests pass a Fake and move
// time forward with Advance instead of waiting for it.
//
// Only these timers read the injected clock: Raft, gRPC keepalives, TLS
// validity and presence freshness keep the real time, so a test may jump a
// Fake by weeks while the cluster under test keeps running.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes tickers and timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTicker returns a ticker sending the time every d (d > 0); like
	// time.Ticker, it drops ticks a slow receiver misses.
	NewTicker(d time.Duration) Ticker
	// After sends the time once, after d.
	After(d time.Duration) <-chan time.Time
}

// Ticker is a time.Ticker behind an interface.
type Ticker interface {
	// C receives the ticks.
	C() <-chan time.Time
	// Stop stops the ticker; it does not close C.
	Stop()
}

// Real is the system clock.
type Real struct{}

var (
	_ Clock = Real{}
	_ Clock = (*Fake)(nil)
)

// Now is time.Now.
func (Real) Now() time.Time { return time.Now() }

// NewTicker is time.NewTicker.
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

// After is time.After.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Or returns c, or Real when c is nil: configs leave their Clock unset in
// production.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}

// Fake is a clock that moves only when told to. Tickers and timers made
// from it fire when Advance (or Set) moves the time past their deadline.
// It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex // guards the fields below
	now     time.Time
	waiters []*waiter
}

// waiter is one ticker (period > 0) or one After timer (period 0).
type waiter struct {
	at     time.Time
	period time.Duration
	ch     chan time.Time
}

// NewFake returns a Fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTicker returns a ticker firing every d of fake time from now.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &waiter{at: f.now.Add(d), period: d, ch: make(chan time.Time, 1)}
	f.waiters = append(f.waiters, w)
	return &fakeTicker{f: f, w: w}
}

// After returns a channel receiving the fake time once d has passed.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &waiter{at: f.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- f.now
		return w.ch
	}
	f.waiters = append(f.waiters, w)
	return w.ch
}

// Advance moves the time forward by d and fires what fell due, in deadline
// order. A ticker fires at most once per Advance (a slow receiver misses
// ticks, as with time.Ticker) and is rescheduled after the new time.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(f.now.Add(d))
}

// Set moves the time to t (never backwards).
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.now) {
		f.setLocked(t)
	}
}

func (f *Fake) setLocked(t time.Time) {
	f.now = t
	sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(t) {
			kept = append(kept, w)
			continue
		}
		select {
		case w.ch <- t:
		default: // the receiver has not taken the last tick: drop this one
		}
		if w.period > 0 {
			for !w.at.After(t) {
				w.at = w.at.Add(w.period)
			}
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

// Waiters reports how many tickers and pending timers the clock holds: a
// test waits for the code under test to have made its ticker before it
// advances the time.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

func (f *Fake) stop(w *waiter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.waiters {
		if x == w {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			return
		}
	}
}

type fakeTicker struct {
	f *Fake
	w *waiter
}

func (t *fakeTicker) C() <-chan time.Time { return t.w.ch }
func (t *fakeTicker) Stop()               { t.f.stop(t.w) }
