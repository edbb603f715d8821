package raftstore_test

import (
	"testing"

	"github.com/kctl-dev/kctl/internal/raftstore"
)

func TestTLS_ClusterReplicates(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3, raftstore.WithTLS())
	res := c.Apply(t, cmd(put("apps", "web", "v1")))
	if !res.GetApplied() {
		t.Fatalf("Apply = %v, want applied", res)
	}
	c.EnsureSame(t)
	for i := range 3 {
		mustGet(t, c.Store(i), "apps", "web", "v1")
	}
}
