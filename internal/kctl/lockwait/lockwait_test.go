package lockwait_test

import (
	"context"
	"errors"
	"testing"
	"time"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/apierr"
	"github.com/kctl-dev/kctl/internal/kctl/lockwait"
	"github.com/kctl-dev/kctl/internal/locks"
)

// now fires at once, so tests never sleep.
func now(time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- time.Now()
	return c
}

func held(message string) error {
	return apierr.LockHeld(&deployv1.LockRecord{Service: "app", Holder: "bob", Message: message, DeployId: "d1"})
}

func TestDo_WaitsBehindAnAutomaticLock(t *testing.T) {
	tries, waits := 0, 0
	err := lockwait.Do(context.Background(), lockwait.Options{Timeout: time.Hour, After: now,
		Waiting: func(l *deployv1.LockRecord, _ error) {
			waits++
			if l.GetHolder() != "bob" {
				t.Errorf("Waiting got holder %q, want bob", l.GetHolder())
			}
		}},
		func(context.Context) error {
			if tries++; tries < 3 {
				return held(locks.AutomaticMessage)
			}
			return nil
		})
	if err != nil || tries != 3 || waits != 2 {
		t.Errorf("Do = %v after %d tries and %d waits, want nil after 3 and 2", err, tries, waits)
	}
}

func TestDo_GivesUp(t *testing.T) {
	other := errors.New("permission denied")
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		err     error
		want    error
	}{
		{"manual lock", time.Hour, held("maintenance"), lockwait.ErrManualLock},
		{"timeout", 0, held(locks.AutomaticMessage), lockwait.ErrTimeout},
		{"another error", time.Hour, other, other},
	} {
		tries := 0
		err := lockwait.Do(context.Background(), lockwait.Options{Timeout: tc.timeout, After: now},
			func(context.Context) error { tries++; return tc.err })
		if !errors.Is(err, tc.want) || tries != 1 {
			t.Errorf("%s: Do = %v after %d tries, want %v after 1", tc.name, err, tries, tc.want)
		}
	}
}

func TestDo_StopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	never := func(time.Duration) <-chan time.Time { return nil }
	err := lockwait.Do(ctx, lockwait.Options{Timeout: time.Hour, After: never},
		func(context.Context) error { return held(locks.AutomaticMessage) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v, want context.Canceled", err)
	}
}
