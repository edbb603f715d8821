package raftstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// BenchmarkApply measures committed, fsynced writes of a 256-byte value
// through the leader of a 3-node cluster over loopback mutual TLS, with 1 and
// 16 concurrent writers. It reports applies/s and per-write p50/p99 latency.
func BenchmarkApply(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			c := raftstore.NewTestCluster(b, 3, raftstore.WithTLS(), raftstore.WithTimeout(time.Second))
			leader := c.WaitForLeader(b)
			value := make([]byte, 256)
			lat := make([][]time.Duration, writers)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range writers {
				n := b.N / writers
				if w < b.N%writers {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range n {
						t0 := time.Now()
						res, err := leader.Apply(context.Background(), &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{
							{Op: &raftcmdv1.Mutation_Put{Put: &raftcmdv1.Put{Table: "bench", Key: fmt.Sprintf("w%02d-%d", w, i%1000), Value: value}}},
						}})
						if err != nil || !res.GetApplied() {
							b.Errorf("Apply: %v %v", res, err)
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) == 0 {
				return
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "applies/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
