package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/rpcerr"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

func TestStatus(t *testing.T) {
	errGone := rpcerr.New(codes.NotFound, "test: gone")
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		message string
	}{
		{"canceled", context.Canceled, codes.Canceled, "context canceled"},
		{"wrapped canceled", fmt.Errorf("raftstore: apply: %w", context.Canceled), codes.Canceled, "raftstore: apply: context canceled"},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, "context deadline exceeded"},
		{"wrapped deadline", fmt.Errorf("raftstore: %w (raft is busy)", context.DeadlineExceeded), codes.DeadlineExceeded, "raftstore: context deadline exceeded (raft is busy)"},
		{"not leader", &raftstore.NotLeaderError{LeaderID: "c1", LeaderAddr: "a"}, codes.Unavailable, "raftstore: not leader (leader is c1 at a)"},
		{"leadership lost", raftstore.ErrLeadershipLost, codes.Unavailable, raftstore.ErrLeadershipLost.Error()},
		{"closed", raftstore.ErrClosed, codes.Unavailable, "raftstore: closed"},
		{"invalid command", fmt.Errorf("%w: no mutations", raftstore.ErrInvalidCommand), codes.InvalidArgument, "raftstore: invalid command: no mutations"},
		{"too large", raftstore.ErrCommandTooLarge, codes.InvalidArgument, "raftstore: command too large"},
		{"unplaceable", fmt.Errorf("%w: the agent of h1 is not connected", scheduler.ErrUnplaceable), codes.Unavailable, "hosts cannot be served: the agent of h1 is not connected"},
		{"invalid request", fmt.Errorf("%w: no roles", scheduler.ErrInvalidRequest), codes.InvalidArgument, "invalid request: no roles"},
		{"sentinel", errGone, codes.NotFound, "test: gone"},
		{"wrapped sentinel", fmt.Errorf("%w: deploy x", errGone), codes.NotFound, "test: gone: deploy x"},
		{"status kept", status.Error(codes.FailedPrecondition, "locked by alice"), codes.FailedPrecondition, "locked by alice"},
		{"unknown", errors.New("boom"), codes.Internal, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rpcerr.Code(tt.err); got != tt.code {
				t.Errorf("Code(%v) = %v, want %v", tt.err, got, tt.code)
			}
			st, ok := status.FromError(rpcerr.Status(tt.err))
			if !ok {
				t.Fatalf("Status(%v) is not a status error", tt.err)
			}
			if st.Code() != tt.code || st.Message() != tt.message {
				t.Errorf("Status(%v) = %v %q, want %v %q", tt.err, st.Code(), st.Message(), tt.code, tt.message)
			}
		})
	}
	if err := rpcerr.Status(nil); err != nil {
		t.Errorf("Status(nil) = %v, want nil", err)
	}
	if got := rpcerr.Code(nil); got != codes.OK {
		t.Errorf("Code(nil) = %v, want OK", got)
	}
}
