package relay

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/shellwords"
)

// streamAPI serves StreamService to operators.
type streamAPI struct {
	streamv1.UnimplementedStreamServiceServer
	s *Server
}

var _ streamv1.StreamServiceServer = streamAPI{}

// Logs streams a container's logs. Errors: InvalidArgument, Unavailable,
// NotFound, PermissionDenied.
func (a streamAPI) Logs(req *streamv1.LogsRequest, stream streamv1.StreamService_LogsServer) error {
	if req.GetAgent() == "" || req.GetTarget().GetKind() == streamv1.Target_KIND_UNSPECIFIED || req.GetTarget().GetKind() == streamv1.Target_KIND_SERVER {
		return status.Error(codes.InvalidArgument, "relay: logs need an agent and an app, accessory or proxy target")
	}
	if n := proto.Size(req); n > maxLogsRequestBytes {
		return status.Errorf(codes.InvalidArgument, "relay: a logs request of %d bytes is over the limit of %d", n, maxLogsRequestBytes)
	}
	ctx := stream.Context()
	o := &streamv1.Open{Caller: caller(ctx), Op: &streamv1.Open_Logs{Logs: req}}
	up, err := a.s.open(ctx, o)
	if err != nil {
		return err
	}
	defer up.Close()
	_, err = pump(ctx, up, nil, stream.Send)
	return cut(req.GetAgent(), err)
}

// Exec runs a command in an app or accessory container. Errors:
// InvalidArgument, Unavailable, NotFound, PermissionDenied.
func (a streamAPI) Exec(stream streamv1.StreamService_ExecServer) error {
	return a.s.exec(stream, false)
}

// ServerExec runs a command on the agent's host. Errors: InvalidArgument,
// Unavailable, FailedPrecondition (not allowed by the agent),
// PermissionDenied.
func (a streamAPI) ServerExec(stream streamv1.StreamService_ServerExecServer) error {
	return a.s.exec(stream, true)
}

// execStream is the operator's side of Exec and ServerExec.
type execStream interface {
	Context() context.Context
	Recv() (*streamv1.ExecInput, error)
	Send(*streamv1.Output) error
}

// exec serves one exec session and audits its start and its end.
func (s *Server) exec(stream execStream, server bool) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if err := checkStart(start, server); err != nil {
		return err
	}
	o := &streamv1.Open{Caller: caller(ctx), Op: &streamv1.Open_Exec{Exec: start}}
	up, err := s.open(ctx, o)
	if err != nil {
		return err
	}
	defer up.Close()
	began := time.Now()
	s.cl.Audit(ctx, auditEntry(o.GetCaller(), start, began, "exec started", "running"))
	exit, err := pump(ctx, up, stream.Recv, stream.Send)
	result := "interrupted: " + status.Convert(err).Message()
	if exit != nil {
		result = fmt.Sprintf("exit %d", exit.GetCode())
	}
	// The session may have ended because the operator went away: the
	// entry is written regardless.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	s.cl.Audit(actx, auditEntry(o.GetCaller(), start, began, "exec finished", result))
	cancel()
	return cut(start.GetAgent(), err)
}

// Limits on what an operator's stream request may carry: a logs request
// (names, --since, --grep) and an exec start (command line, -e pairs and,
// for a one-off container, the role's spec without secret values).
const (
	maxLogsRequestBytes = 16 << 10
	maxExecStartBytes   = 256 << 10
)

// checkStart validates an exec start for Exec (server false) or ServerExec.
func checkStart(start *streamv1.ExecStart, server bool) error {
	switch {
	case start == nil:
		return status.Error(codes.InvalidArgument, "relay: an exec must start with a start")
	case proto.Size(start) > maxExecStartBytes:
		return status.Errorf(codes.InvalidArgument, "relay: an exec start of %d bytes is over the limit of %d", proto.Size(start), maxExecStartBytes)
	case start.GetAgent() == "" || len(start.GetCommand()) == 0:
		return status.Error(codes.InvalidArgument, "relay: an exec needs an agent and a command")
	case server != (start.GetTarget().GetKind() == streamv1.Target_KIND_SERVER):
		return status.Error(codes.InvalidArgument, "relay: ServerExec runs on servers, Exec in containers")
	case !server && start.GetTarget().GetKind() == streamv1.Target_KIND_UNSPECIFIED:
		return status.Error(codes.InvalidArgument, "relay: an exec needs a target")
	case !server && !start.GetReuse() && start.GetTarget().GetKind() == streamv1.Target_KIND_APP && start.GetContainer() == nil:
		return status.Error(codes.InvalidArgument, "relay: a one-off exec needs the role's container spec")
	}
	return nil
}

// auditEntry records an exec: who, where, the command line and the names
// of the -e variables, never their values nor the session's content.
func auditEntry(who string, start *streamv1.ExecStart, began time.Time, action, result string) *deployv1.AuditEntry {
	t := start.GetTarget()
	detail := "command: " + joinWords(start.GetCommand())
	if len(start.GetEnv()) > 0 {
		keys := make([]string, 0, len(start.GetEnv()))
		for _, e := range start.GetEnv() {
			keys = append(keys, e.GetKey())
		}
		detail += "; env: " + strings.Join(keys, ",")
	}
	mode := "one-off container"
	switch {
	case t.GetKind() == streamv1.Target_KIND_SERVER:
		mode = "host"
	case start.GetReuse() || t.GetKind() != streamv1.Target_KIND_APP:
		mode = "running container"
	}
	detail += "; in: " + mode
	if start.GetInteractive() {
		detail += "; interactive"
	}
	detail += "; started: " + began.UTC().Format(time.RFC3339)
	role := t.GetRole()
	if t.GetKind() == streamv1.Target_KIND_ACCESSORY {
		role = "accessory " + t.GetName()
	}
	return &deployv1.AuditEntry{
		UnixMillis: time.Now().UnixMilli(), Operator: who, Service: t.GetService(), Destination: t.GetDestination(),
		Role: role, Host: start.GetAgent(), Action: action, Result: result, Detail: detail,
	}
}

// caller names the operator of an incoming call.
func caller(ctx context.Context) string {
	id, err := pki.RemoteIdentity(ctx)
	if err != nil {
		return "unknown"
	}
	return id.Name
}

// joinWords renders argv as one shell line.
func joinWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellwords.Escape(w)
	}
	return strings.Join(q, " ")
}
