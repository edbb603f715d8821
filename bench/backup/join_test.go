package backup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
)

// BenchmarkJoin measures a new controller joining a 3-node cluster that
// holds 100,000 audit entries and 1,000 agents: the time from its start
// until it is a voter that has caught up and serves (controller.Start
// returns then), and what it received (the snapshot on its disk plus the
// log entries after it).
//
//	go test -run '^$' -bench Join -benchtime 1x ./bench/backup/
func BenchmarkJoin(b *testing.B) {
	tc := controllertest.NewCluster(b, 3)
	fill(b, func() *controller.Controller { return tc.Nodes[tc.Leader()].C })
	if err := tc.Nodes[tc.Leader()].C.Store().Snapshot(); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		n++
		tok := tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 1, time.Hour)
		i := tc.AddNode("c" + string(rune('3'+n)))
		start := time.Now()
		tc.Join(i, tok)
		took := time.Since(start)
		if !tc.Nodes[i].C.Serving() {
			b.Fatal("the joined controller does not serve")
		}
		b.ReportMetric(took.Seconds(), "s/join")
		b.ReportMetric(float64(dirSize(filepath.Join(tc.Nodes[i].Dir, "raft")))/(1<<20), "MiB-received")
	}
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
