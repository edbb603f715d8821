package pki

import (
	"errors"
	"testing"
)

func TestIdentity_EncodeDecode(t *testing.T) {
	ids := []Identity{
		{ClusterID: "c", Role: RoleController, Name: "c1"},
		{ClusterID: "c", Role: RoleAgent, Name: "web 1&x=y"},
		{ClusterID: "c", Role: RoleOperator, Name: "alice", OperatorRole: OperatorViewer},
	}
	for _, id := range ids {
		got, err := decodeIdentity(id.encode())
		if err != nil || got != id {
			t.Errorf("decodeIdentity(encode(%v)) = %v, %v; want %v, nil", id, got, err, id)
		}
	}
	for _, bad := range []string{"", "%zz", "cluster=c&role=agent", "cluster=c&role=agent&name=a&extra=1", "cluster=c&role=agent&name=a&name=b"} {
		if got, err := decodeIdentity(bad); !errors.Is(err, ErrInvalidIdentity) {
			t.Errorf("decodeIdentity(%q) = %v, %v; want ErrInvalidIdentity", bad, got, err)
		}
	}
}
