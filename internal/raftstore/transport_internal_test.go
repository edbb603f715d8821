package raftstore

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// The store's own transport replicates without hashicorp/raft's pipeline,
// whose decoder can stop reading after a refused AppendEntries and leave a
// follower without entries and Shutdown blocked (noPipeline).
func TestTransport_NoPipelinedReplication(t *testing.T) {
	var tr raft.Transport = noPipeline{}
	if _, err := tr.AppendEntriesPipeline("x", "y"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline = %v, want ErrPipelineReplicationNotSupported", err)
	}
}
