// Package apierr holds the typed details the controllers attach to gRPC
// errors and the clients decode, so a client decides from a reason and
// fields, never from the text of a message. Each detail is an
// errdetails.ErrorInfo in Domain with one of the Reason constants; the
// server builds the status with the constructors (LockHeld,
// AgentsUnavailable) and the client reads it back with the decoders
// (HeldLock, UnavailableAgents). The package depends on the wire types only,
// so kctl links it without server code.
package apierr

import (
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/locks"
)

// Domain is the ErrorInfo domain of every kctl detail.
const Domain = "kctl.dev"

// Reasons of the ErrorInfo details.
const (
	// ReasonDeployLockHeld: the deploy lock is held by someone else.
	// Metadata: holder, message, version, deploy_id, acquired_unix_millis, key.
	ReasonDeployLockHeld = "DEPLOY_LOCK_HELD"
	// ReasonAgentNotConnected: a host's agent is enrolled but not connected.
	// Metadata: hosts (comma-separated).
	ReasonAgentNotConnected = "AGENT_NOT_CONNECTED"
	// ReasonAgentNotEnrolled: no agent is enrolled under a host's name.
	// Metadata: hosts (comma-separated).
	ReasonAgentNotEnrolled = "AGENT_NOT_ENROLLED"
)

// New returns a status error with code and msg that carries an ErrorInfo
// in Domain with reason and metadata.
func New(code codes.Code, msg, reason string, metadata map[string]string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: Domain, Metadata: metadata})
	if err != nil { // only when the detail cannot be marshalled
		return status.Error(code, msg)
	}
	return st.Err()
}

// Info returns the kctl ErrorInfo carried by err (a gRPC status error,
// possibly wrapped), or nil.
func Info(err error) *errdetails.ErrorInfo {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return info
		}
	}
	return nil
}

// Reason returns the reason of err's kctl ErrorInfo, or "".
func Reason(err error) string { return Info(err).GetReason() }

// LockHeld is the FailedPrecondition a Submit or AcquireLock returns when l
// holds the deploy lock.
func LockHeld(l *deployv1.LockRecord) error {
	return New(codes.FailedPrecondition, locks.Describe(l), ReasonDeployLockHeld, map[string]string{
		"holder":               l.GetHolder(),
		"message":              l.GetMessage(),
		"version":              l.GetVersion(),
		"deploy_id":            l.GetDeployId(),
		"acquired_unix_millis": strconv.FormatInt(l.GetAcquiredUnixMillis(), 10),
		"key":                  locks.Key(l.GetService(), l.GetDestination()),
	})
}

// HeldLock decodes the lock a LockHeld error describes; ok is false when err
// carries no such detail. The lock's Service holds the lock key.
func HeldLock(err error) (l *deployv1.LockRecord, ok bool) {
	info := Info(err)
	if info.GetReason() != ReasonDeployLockHeld {
		return nil, false
	}
	md := info.GetMetadata()
	at, _ := strconv.ParseInt(md["acquired_unix_millis"], 10, 64)
	return &deployv1.LockRecord{
		Service: md["key"], Holder: md["holder"], Message: md["message"], Version: md["version"],
		DeployId: md["deploy_id"], AcquiredUnixMillis: at,
	}, true
}

// AgentsUnavailable is the error of a deploy refused because hosts have no
// usable agent: reason is ReasonAgentNotConnected or ReasonAgentNotEnrolled.
func AgentsUnavailable(code codes.Code, msg, reason string, hosts []string) error {
	return New(code, msg, reason, map[string]string{"hosts": strings.Join(hosts, ",")})
}

// UnavailableAgents decodes an AgentsUnavailable error: its reason and hosts.
func UnavailableAgents(err error) (reason string, hosts []string, ok bool) {
	info := Info(err)
	switch info.GetReason() {
	case ReasonAgentNotConnected, ReasonAgentNotEnrolled:
		if h := info.GetMetadata()["hosts"]; h != "" {
			hosts = strings.Split(h, ",")
		}
		return info.GetReason(), hosts, true
	}
	return "", nil, false
}

// IsAnswer reports whether err carries a kctl ErrorInfo: a controller's
// typed answer, which a client shows rather than trying another controller.
func IsAnswer(err error) bool { return Info(err) != nil }
