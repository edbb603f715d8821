// Package explain turns a controller's error into one line that says what
// to do next, deciding from the gRPC code and the typed detail (apierr),
// never from the message's text alone. The explained error still unwraps to
// the controller's status, so callers can read its code and detail.
package explain

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kctl-dev/kctl/internal/apierr"
)

// Error is the controller's status error explained; it unwraps to the status.
type Error struct {
	msg string
	err error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

// Explain returns err explained in one line, or err itself when it is not a
// gRPC status (it is then already explained, as ctlclient.ErrUnreachable
// is), or nil.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var done *Error
	if errors.As(err, &done) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	for _, p := range []string{"controller: ", "pki: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return &Error{msg: hint(st.Code(), msg, err), err: err}
}

// hint is msg with what to do next.
func hint(code codes.Code, msg string, err error) string {
	if reason, hosts, ok := apierr.UnavailableAgents(err); ok {
		return agentsHint(reason, hosts, msg)
	}
	switch code {
	case codes.PermissionDenied:
		return fmt.Sprintf("permission denied: %s (ask an admin for a role that may do this)", msg)
	case codes.Unauthenticated:
		if strings.Contains(msg, "revoked") {
			return msg + ": these credentials were revoked; ask an admin for a new operator token and kctl login"
		}
		if strings.Contains(msg, "expired") {
			return msg + ": kctl login again with a new operator token"
		}
	case codes.Unavailable, codes.DeadlineExceeded:
		return msg + " (is a majority of the controllers running? try again)"
	}
	return msg
}

// agentsHint explains a deploy refused because hosts have no usable agent.
func agentsHint(reason string, hosts []string, msg string) string {
	list := strings.Join(hosts, ", ")
	switch reason {
	case apierr.ReasonAgentNotConnected:
		return fmt.Sprintf("the agent of %s is not connected: check `kctl agents`, and that `agent run` runs on that server and reaches a controller", list)
	case apierr.ReasonAgentNotEnrolled:
		return fmt.Sprintf("no agent is enrolled for %s: deploy.yml hosts are agent names; start `agent run --name HOST` on each server (`kctl agents` lists the enrolled ones)", list)
	}
	return msg
}
