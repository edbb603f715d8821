// Package raftstore is the controller's replicated state: a small,
// deterministic, transactional table store kept identical on every controller
// by hashicorp/raft.
//
// The store holds records (table, key) → opaque bytes, each with the log index
// that created it and the one that last modified it. A write is a
// raftcmdv1.Command: preconditions (compare-and-set on a record's modify
// index, absent, present) and mutations (Put, Delete, Append, DeletePrefix)
// applied all or none. Only the leader accepts writes; on a follower Apply
// returns a *NotLeaderError naming the leader so the caller can forward.
//
// Reads (Get, List, View) are served from the local in-memory state and may
// be stale on a follower. ConsistentRead is the linearizable read gate: on
// the leader it verifies leadership with a quorum round-trip and waits until
// the leader has applied every entry of earlier terms (a Barrier run on
// gaining leadership); then a local read is current.
//
// Durability: the log and Raft metadata live in BoltDB (raft-boltdb/v2) under
// Config.DataDir/raft, snapshots in Config.DataDir/raft/snapshots. The state
// is an immutable radix tree, so taking a snapshot is O(1) and readers never
// block writers. See docs/raftstore.md for the design.
//
// Raft traffic runs over mutual TLS (NewTLSStreamLayer); peers must present a
// certificate from the cluster CA and pass Config.VerifyPeer.
package raftstore
