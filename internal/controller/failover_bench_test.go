package controller_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// BenchmarkFailover_NewLeader measures, with the production Raft timing
// (controller.RaftHeartbeatTimeout etc., docs/membership.md), how long a
// 3-controller cluster takes to elect a new leader after its leader stops;
// the killed node then rejoins before the next round (untimed). Target:
// ≤2 s (ms/failover).
func BenchmarkFailover_NewLeader(b *testing.B) {
	tc := controllertest.NewCluster(b, 3, controllertest.WithRaft(func(c *raftstore.Config) {
		c.HeartbeatTimeout, c.ElectionTimeout = controller.RaftHeartbeatTimeout, controller.RaftElectionTimeout
		c.LeaderLeaseTimeout, c.CommitTimeout = controller.RaftLeaderLeaseTimeout, 0
	}))
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		old := tc.Leader()
		// Every survivor's leadership channel, subscribed before the kill
		// (the channels are closed when the node closes).
		elected := make(chan struct{}, len(tc.Nodes))
		for i, n := range tc.Nodes {
			if i == old || n.C == nil {
				continue
			}
			ch := n.C.Store().LeaderCh()
			go func() {
				for leader := range ch {
					if leader {
						elected <- struct{}{}
						return
					}
				}
			}()
		}
		b.StartTimer()
		start := time.Now()
		tc.Kill(old)
		select {
		case <-elected:
		case <-time.After(20 * time.Second):
			b.Fatal("no new leader within 20s")
		}
		total += time.Since(start)
		b.StopTimer()
		tc.Restart(old)
		controllertest.WaitFor(b, 20*time.Second, "the old leader back", func() error {
			if !tc.Nodes[old].C.Serving() {
				return fmt.Errorf("not serving")
			}
			return nil
		})
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
}
