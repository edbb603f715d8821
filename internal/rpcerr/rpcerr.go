// Package rpcerr translates the server's errors into gRPC statuses, once, at
// the edge: every RPC handler of the controller and the deploy service
// returns Status(err) and nothing else maps errors to codes.
//
// A domain sentinel that has a natural code is declared with New, beside its
// callers; errors of the packages below the API (context, raftstore,
// scheduler) are classified by the table in Code. A status error passes
// through unchanged, so a handler may still return a status it built itself
// (with a hint or a detail).
package rpcerr

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

// codedError is a sentinel error that names the code it translates to.
type codedError struct {
	code codes.Code
	msg  string
}

func (e *codedError) Error() string { return e.msg }

// New returns a sentinel error with message msg that Status translates to
// code. Each call returns a distinct error: compare with errors.Is.
func New(code codes.Code, msg string) error { return &codedError{code: code, msg: msg} }

// table classifies the errors of the packages below the API. The first match
// wins.
var table = []struct {
	err  error
	code codes.Code
}{
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{raftstore.ErrNotLeader, codes.Unavailable},
	{raftstore.ErrLeadershipLost, codes.Unavailable},
	{raftstore.ErrClosed, codes.Unavailable},
	{raftstore.ErrInvalidCommand, codes.InvalidArgument},
	{raftstore.ErrCommandTooLarge, codes.InvalidArgument},
	{scheduler.ErrUnplaceable, codes.Unavailable},
	{scheduler.ErrInvalidRequest, codes.InvalidArgument},
}

// Code returns the gRPC code err translates to: a status error's own code,
// a New sentinel's code, the table's code, or Internal for anything else (a
// bug, not a condition the caller can act on). Code(nil) is OK.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	if ce, ok := errors.AsType[*codedError](err); ok {
		return ce.code
	}
	for _, e := range table {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return codes.Internal
}

// Status returns err as a gRPC status error with Code(err): status errors
// unchanged, nil as nil. The scheduler's package prefix is dropped from the
// message: kctl shows it to the operator as it is.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := err.Error()
	if errors.Is(err, scheduler.ErrUnplaceable) || errors.Is(err, scheduler.ErrInvalidRequest) {
		msg = strings.TrimPrefix(msg, "scheduler: ")
	}
	return status.Error(Code(err), msg)
}
