package apierr_test

import (
	"errors"
	"fmt"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/apierr"
	"github.com/kctl-dev/kctl/internal/locks"
)

// overTheWire sends err's status through its protobuf encoding, as gRPC
// does, and wraps the result as a client would.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	b, merr := proto.Marshal(status.Convert(err).Proto())
	if merr != nil {
		t.Fatal(merr)
	}
	p := &spb.Status{}
	if err := proto.Unmarshal(b, p); err != nil {
		t.Fatal(err)
	}
	return fmt.Errorf("submit: %w", status.ErrorProto(p))
}

func TestLockHeld_RoundTrip(t *testing.T) {
	l := &deployv1.LockRecord{Service: "app", Destination: "prod", Holder: "alice", Message: locks.AutomaticMessage,
		Version: "v2", DeployId: "d1", AcquiredUnixMillis: 1700000000123}
	err := overTheWire(t, apierr.LockHeld(l))
	if got := status.Code(err); got != codes.FailedPrecondition {
		t.Errorf("code = %v, want FailedPrecondition", got)
	}
	if got, want := status.Convert(errors.Unwrap(err)).Message(), locks.Describe(l); got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	got, ok := apierr.HeldLock(err)
	if !ok {
		t.Fatalf("HeldLock(%v) found no lock", err)
	}
	want := &deployv1.LockRecord{Service: "app-prod", Holder: "alice", Message: locks.AutomaticMessage,
		Version: "v2", DeployId: "d1", AcquiredUnixMillis: 1700000000123}
	if !proto.Equal(got, want) {
		t.Errorf("HeldLock = %v, want %v", got, want)
	}
}

func TestAgentsUnavailable_RoundTrip(t *testing.T) {
	err := overTheWire(t, apierr.AgentsUnavailable(codes.Unavailable, "hosts cannot be served", apierr.ReasonAgentNotConnected, []string{"web-1", "web-2"}))
	reason, hosts, ok := apierr.UnavailableAgents(err)
	if !ok || reason != apierr.ReasonAgentNotConnected || fmt.Sprint(hosts) != "[web-1 web-2]" {
		t.Errorf("UnavailableAgents = %q, %v, %v; want AGENT_NOT_CONNECTED, [web-1 web-2], true", reason, hosts, ok)
	}
	if !apierr.IsAnswer(err) {
		t.Error("IsAnswer = false, want true")
	}
	if _, ok := apierr.HeldLock(err); ok {
		t.Error("HeldLock found a lock in an agents error")
	}
}

func TestPlainErrors_CarryNoDetail(t *testing.T) {
	for _, err := range []error{nil, fmt.Errorf("plain"), status.Error(codes.Unavailable, "no leader")} {
		if apierr.IsAnswer(err) || apierr.Reason(err) != "" {
			t.Errorf("IsAnswer(%v) = true, want false", err)
		}
		if _, _, ok := apierr.UnavailableAgents(err); ok {
			t.Errorf("UnavailableAgents(%v) ok, want not", err)
		}
	}
}
