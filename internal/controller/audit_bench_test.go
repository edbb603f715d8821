package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// BenchmarkAuditWrites measures hash-chained audit entries committed
// through the leader of a 3-node cluster (loopback mutual TLS, fsync on),
// reporting entries/s: the Raft floors (one entry per command, from 1 and
// 16 writers), one writer batching 256 entries per command, and the
// auditor's group commit with 256 concurrent calls, which is how the
// interceptor writes. Target: ≥ 5,000 entries/s batched.
func BenchmarkAuditWrites(b *testing.B) {
	entry := func(i int) *deployv1.AuditEntry {
		return &deployv1.AuditEntry{UnixMillis: time.Now().UnixMilli(), Operator: "alice", CallerRole: "operator/admin",
			Address: "10.0.0.7:52344", Method: "/kctl.controller.v1.ControllerService/RemoveAgent",
			Action: fmt.Sprintf("ControllerService/RemoveAgent name=\"web-%d\"", i), Result: "ok", Host: fmt.Sprintf("web-%d", i)}
	}
	type applyFunc = func(context.Context, *raftcmdv1.Command) (*raftcmdv1.Result, error)
	run := func(b *testing.B, writers int, mk func(apply applyFunc) func(ctx context.Context, i int) error) {
		c := raftstore.NewTestCluster(b, 3, raftstore.WithTLS(), raftstore.WithTimeout(time.Second))
		leader := c.WaitForLeader(b)
		write := mk(leader.Apply)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for w := range writers {
			n := b.N / writers
			if w < b.N%writers {
				n++
			}
			wg.Go(func() {
				for i := range n {
					if err := write(context.Background(), w*n+i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if seq, _ := schema.Audit.Head(leader.View()); seq != uint64(b.N) {
			b.Errorf("chain head at %d, want %d", seq, b.N)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
	}
	one := func(apply applyFunc) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			_, err := apply(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Audit.Append(entry(i))}})
			return err
		}
	}
	b.Run("raft-floor/writers=1", func(b *testing.B) { run(b, 1, one) })
	b.Run("raft-floor/writers=16", func(b *testing.B) { run(b, 16, one) })
	// One writer, 256 entries per command: what batching can reach.
	b.Run("raft-batched/entries=256", func(b *testing.B) {
		run(b, 1, func(apply applyFunc) func(context.Context, int) error {
			var batch []*raftcmdv1.Mutation
			written := 0
			return func(ctx context.Context, i int) error {
				batch = append(batch, schema.Audit.Append(entry(i)))
				written++
				if len(batch) < 256 && written < b.N {
					return nil
				}
				_, err := apply(ctx, &raftcmdv1.Command{Mutations: batch})
				batch = nil
				return err
			}
		})
	})
	b.Run("auditor/calls=256", func(b *testing.B) {
		run(b, 256, func(apply applyFunc) func(context.Context, int) error {
			a := &auditor{apply: apply}
			return func(ctx context.Context, i int) error { return a.record(ctx, entry(i)) }
		})
	})
}
