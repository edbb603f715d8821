// Package protocol holds the version of everything kctl's nodes exchange:
// the controller⇄controller and agent⇄controller wire messages, the Raft
// command encoding and the snapshot (and backup) format. It is one integer,
// raised by one whenever a build starts writing something an older build
// cannot read; a build interoperates with peers from Oldest to Current.
//
// Each controller records its protocol version in its Raft node record, each
// agent sends its version in its session Hello. The cluster's version is the
// lowest of its voters' (ClusterVersion): a feature that older builds cannot
// read turns on only once every voter runs a build that knows it
// (Supports), so controllers are upgraded one at a time without stopping the
// cluster. A node with no recorded version (a build older than this
// package) counts as version 1.
//
// Tests stamp other versions into a build with -ldflags:
//
//	go build -ldflags "-X github.com/kctl-dev/kctl/internal/protocol.version=99" ./cmd/controller
package protocol

import (
	"fmt"
	"strconv"
)

// Versions of the protocol. Version 1 is every build before this package
// existed (no version on the wire).
const (
	// V1 is the original protocol (unversioned builds).
	V1 = 1
	// V2 adds protocol versions on the wire and in Raft, Command.format,
	// cluster backups and restore.
	V2 = 2
)

// Features gated on the cluster's version: code that writes something
// older builds cannot read checks Supports(clusterVersion, Feature) first.
const (
	// FeatureVersioned is the first version that records protocol
	// versions.
	FeatureVersioned = V2
	// FeatureAuditChain: audit entries are written hash-chained (a new
	// Append field a V1 replica refuses); before, plain appends to the
	// legacy audit table (schema.Unchain).
	FeatureAuditChain = V2
	// FeatureSealedCAKey: the CA key is stored sealed (a V1 controller
	// could not open it to sign).
	FeatureSealedCAKey = V2
)

// version and oldest are strings so that -ldflags -X can set them.
var (
	version = "2"
	oldest  = ""
)

// Current is this build's protocol version.
func Current() int { return parse("version", version, V2) }

// Oldest is the oldest peer version this build interoperates with (by
// default Current()-1, at least 1): clusters are upgraded one version at a
// time.
func Oldest() int {
	if oldest != "" {
		return parse("oldest", oldest, V1)
	}
	return max(Current()-1, V1)
}

func parse(name, s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return def
	}
	return n
}

// Normalize maps a version read from the wire or Raft to a version: 0 (not
// sent: a build older than versioning) is 1.
func Normalize(v uint32) int {
	if v == 0 {
		return V1
	}
	return int(v)
}

// ClusterVersion is the lowest of the given voters' versions (Normalized),
// or Current() when there are none.
func ClusterVersion(voters []uint32) int {
	if len(voters) == 0 {
		return Current()
	}
	m := Normalize(voters[0])
	for _, v := range voters[1:] {
		m = min(m, Normalize(v))
	}
	return m
}

// Supports reports whether a cluster at clusterVersion may use feature (the
// version that introduced it).
func Supports(clusterVersion, feature int) bool { return clusterVersion >= feature }

// CheckJoiner reports why a cluster at clusterVersion refuses a node that
// speaks version peer: it is older than the cluster (features the cluster
// already uses would be unreadable to it).
func CheckJoiner(clusterVersion, peer int) error {
	if peer < clusterVersion {
		return fmt.Errorf("it speaks protocol version %d, older than the cluster's %d: upgrade it to the cluster's build first", peer, clusterVersion)
	}
	return nil
}

// CheckCluster reports why this build refuses to join (or to be restored
// from, or to talk to) something at version v: older than Oldest() or newer
// than Current().
func CheckCluster(what string, v int) error {
	switch {
	case v < Oldest():
		return fmt.Errorf("%s speaks protocol version %d; this build (protocol %d) understands versions %d to %d: upgrade the cluster one version at a time, or use an older build", what, v, Current(), Oldest(), Current())
	case v > Current():
		return fmt.Errorf("%s speaks protocol version %d, newer than this build's %d: upgrade this node first", what, v, Current())
	}
	return nil
}

// LDFlag returns the -ldflags argument that stamps protocol version v into
// a build (tests).
func LDFlag(v int) string {
	return "-X github.com/kctl-dev/kctl/internal/protocol.version=" + strconv.Itoa(v)
}
