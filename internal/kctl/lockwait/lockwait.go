// Package lockwait waits for a service's deploy lock as Kamal's --lock-wait
// does: while another deploy holds it (an automatic lock), try again every
// interval until a timeout; behind a lock taken by hand, give up at once. It
// decides from the typed detail of the controller's answer
// (apierr.HeldLock), never from its text.
package lockwait

import (
	"context"
	"errors"
	"fmt"
	"time"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/apierr"
	"github.com/kctl-dev/kctl/internal/locks"
)

var (
	// ErrManualLock is wrapped when the lock was taken by hand (kctl lock
	// acquire), which --lock-wait does not wait for.
	ErrManualLock = errors.New("deploy lock held manually, not waiting")
	// ErrTimeout is wrapped when the lock was still held at the timeout.
	ErrTimeout = errors.New("timed out waiting for deploy lock")
)

// Options say how long and how often to try.
type Options struct {
	// Timeout bounds the whole wait.
	Timeout time.Duration
	// Interval is the pause between tries.
	Interval time.Duration
	// Waiting, if set, is told about each held lock before a pause; err is
	// the controller's answer.
	Waiting func(l *deployv1.LockRecord, err error)
	// After is the timer; time.After when nil (tests pass their own).
	After func(time.Duration) <-chan time.Time
}

// Do calls try until it returns nil or an error other than an automatic
// deploy lock held by someone else, waiting between tries. It returns try's
// last error, wrapped with ErrManualLock or ErrTimeout when it gives up
// because of the lock, or ctx's error.
func Do(ctx context.Context, o Options, try func(context.Context) error) error {
	after := o.After
	if after == nil {
		after = time.After
	}
	deadline := time.Now().Add(o.Timeout)
	for {
		err := try(ctx)
		l, held := apierr.HeldLock(err)
		switch {
		case err == nil || !held:
			return err
		case l.GetMessage() != locks.AutomaticMessage:
			return fmt.Errorf("%w; %w", err, ErrManualLock)
		case !time.Now().Before(deadline):
			return fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		if o.Waiting != nil {
			o.Waiting(l, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-after(o.Interval):
		}
	}
}
