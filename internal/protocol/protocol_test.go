package protocol

import (
	"strings"
	"testing"
)

func TestClusterVersionAndGates(t *testing.T) {
	if got := ClusterVersion(nil); got != Current() {
		t.Errorf("ClusterVersion(nil) = %d, want Current() %d", got, Current())
	}
	// An unversioned voter (0) counts as 1 and holds the cluster back.
	if got := ClusterVersion([]uint32{2, 0, 2}); got != V1 {
		t.Errorf("ClusterVersion(2,0,2) = %d, want 1", got)
	}
	if got := ClusterVersion([]uint32{3, 2, 4}); got != 2 {
		t.Errorf("ClusterVersion(3,2,4) = %d, want 2", got)
	}
	if Supports(V1, FeatureVersioned) || !Supports(V2, FeatureVersioned) {
		t.Errorf("Supports gates wrong")
	}
}

func TestChecks(t *testing.T) {
	if err := CheckJoiner(2, 1); err == nil || !strings.Contains(err.Error(), "older than the cluster's 2") {
		t.Errorf("CheckJoiner(2, 1) = %v", err)
	}
	if err := CheckJoiner(2, 3); err != nil {
		t.Errorf("CheckJoiner(2, 3) = %v, want nil (a newer node may join an older cluster)", err)
	}
	for _, v := range []int{Oldest(), Current()} {
		if err := CheckCluster("x", v); err != nil {
			t.Errorf("CheckCluster(%d) = %v", v, err)
		}
	}
	if err := CheckCluster("the cluster", Current()+1); err == nil {
		t.Errorf("CheckCluster(newer) = nil")
	}
	if Oldest() > 1 {
		if err := CheckCluster("the cluster", Oldest()-1); err == nil {
			t.Errorf("CheckCluster(older than Oldest) = nil")
		}
	}
}

func TestStampedVersions(t *testing.T) {
	old := version
	defer func() { version = old }()
	version = "99"
	if Current() != 99 || Oldest() != 98 {
		t.Errorf("version=99: Current %d Oldest %d, want 99 98", Current(), Oldest())
	}
	if err := CheckCluster("the cluster", 2); err == nil || !strings.Contains(err.Error(), "understands versions 98 to 99") {
		t.Errorf("a v99 build joining a v2 cluster: %v", err)
	}
	version = "junk"
	if Current() != V2 {
		t.Errorf("unparsable stamp: Current %d, want the default", Current())
	}
}
