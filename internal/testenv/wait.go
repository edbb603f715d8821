package testenv

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// Poll calls cond until it returns nil or timeout passes, and returns nil or
// cond's last error. It polls quickly at first (10ms) and backs off to one
// call every 100ms, so fast conditions are seen at once and slow ones (a
// command per call) do not burn the CPU.
func Poll(timeout time.Duration, cond func() error) error {
	return poll(timeout, 10*time.Millisecond, 100*time.Millisecond, cond)
}

// PollEvery is Poll at a fixed interval (benchmarks that time the moment a
// condition becomes true).
func PollEvery(timeout, interval time.Duration, cond func() error) error {
	return poll(timeout, interval, interval, cond)
}

func poll(timeout, interval, maxInterval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if errors.Is(err, errStop) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not met after %s: %w", timeout, err)
		}
		time.Sleep(interval) // the polling interval
		interval = min(2*interval, maxInterval)
	}
}

// errStop ends a Poll early (Stop).
var errStop = errors.New("gave up")

// Stop wraps err so that Poll returns it at once instead of polling on: for
// a condition that can no longer become true (the process exited).
func Stop(err error) error { return fmt.Errorf("%w: %w", errStop, err) }

// WaitFor polls cond (see Poll) until it returns nil, and fails t with
// cond's last error if timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
}

// WaitReady waits until ready is closed, and fails t if done delivers first
// (what was to become ready returned, with that error) or timeout passes.
func WaitReady(t testing.TB, timeout time.Duration, what string, ready <-chan struct{}, done <-chan error) {
	t.Helper()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s: returned %v before it was ready", what, err)
	case <-time.After(timeout):
		t.Fatalf("%s: not ready after %s", what, timeout)
	}
}
