package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// TestCluster_StressLeaderKills runs concurrent writers that retry every
// write (same request_id) until acknowledged, while the leader is killed and
// restarted repeatedly. Afterwards every writer's table must hold each of its
// acknowledged writes exactly once, in order: no acknowledged write is lost
// and no retry is applied twice.
func TestCluster_StressLeaderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test")
	}
	c := raftstore.NewTestCluster(t, 3)
	const writers = 4
	var acked [writers]atomic.Int64
	var ambiguous atomic.Int64 // attempts whose outcome was unknown (retried)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c1 := &raftcmdv1.Command{
					RequestId: fmt.Sprintf("w%d-%d", w, i),
					Mutations: []*raftcmdv1.Mutation{appendM(fmt.Sprintf("w%d", w), strconv.Itoa(i))},
				}
				deadline := time.Now().Add(30 * time.Second)
				for {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("writer %d: write %d not acknowledged in 30s", w, i)
						return
					}
					li := c.Leader()
					var s *raftstore.Store
					if li >= 0 {
						s = c.Store(li)
					}
					if s == nil {
						waitBriefly(stop)
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					res, err := s.Apply(ctx, c1)
					cancel()
					if err == nil && res.GetApplied() {
						acked[w].Add(1)
						break
					}
					if err != nil && errors.Is(err, raftstore.ErrInvalidCommand) {
						errs <- err
						return
					}
					if errors.Is(err, raftstore.ErrLeadershipLost) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, raftstore.ErrClosed) {
						ambiguous.Add(1)
					}
					waitBriefly(stop)
				}
			}
		}()
	}
	total := func() int64 {
		var n int64
		for i := range acked {
			n += acked[i].Load()
		}
		return n
	}
	for round := range 3 {
		base := total()
		c.WaitFor(t, "writers to make progress", func() error {
			if total() < base+40 {
				return fmt.Errorf("round %d: %d acknowledged, want %d", round, total(), base+40)
			}
			return nil
		})
		li := c.Leader()
		if li < 0 {
			c.WaitForLeader(t)
			li = c.Leader()
		}
		c.Kill(li)
		c.WaitForLeader(t)
		c.Restart(li)
	}
	base := total()
	c.WaitFor(t, "writers to make progress after the last kill", func() error {
		if total() < base+20 {
			return fmt.Errorf("%d acknowledged, want %d", total(), base+20)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.EnsureSame(t)
	s := c.Store(0)
	for w := range writers {
		recs := s.List(fmt.Sprintf("w%d", w), "")
		if int64(len(recs)) != acked[w].Load() {
			t.Errorf("writer %d: %d records, %d acknowledged writes", w, len(recs), acked[w].Load())
		}
		for i, r := range recs {
			if string(r.Value) != strconv.Itoa(i) {
				t.Fatalf("writer %d: record %d = %q, want %d (lost, duplicated or reordered write)", w, i, r.Value, i)
			}
		}
	}
	t.Logf("acknowledged %d writes across 3 leader kills; %d attempts had an unknown outcome and were retried", total(), ambiguous.Load())
}

// waitBriefly backs off between retries (not a wait for a condition).
func waitBriefly(stop <-chan struct{}) {
	select {
	case <-stop:
	case <-time.After(10 * time.Millisecond):
	}
}
