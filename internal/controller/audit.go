package controller

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/schema"
)

// The audit of every call that changes anything: Policy marks those methods
// (Audit), and the interceptors below record one entry per call after the
// handler returns (who, role, address, method with a summary of the request
// that never holds a secret, result) unless the handler already wrote a
// richer entry of its own (deploys, locks, execs: noteAudited sees the
// write). Entries go through the auditor, which group-commits concurrent
// entries in one Raft command; the hash chain is assigned in the state
// machine (raftstore's chained Append).

// auditMark is put in a call's context by the interceptor; wrote is set
// when the handler's own writes appended to the audit. who is the call's
// caller, role, address and method, which the controller adds to the
// handler's own entries (enrichAudit).
type auditMark struct {
	wrote atomic.Bool
	who   *deployv1.AuditEntry
}

type auditMarkKey struct{}

// withAuditMark returns ctx carrying a new mark for a call of method.
func withAuditMark(ctx context.Context, method string) (context.Context, *auditMark) {
	m := &auditMark{who: callEntry(ctx, method, nil, nil, nil)}
	return context.WithValue(ctx, auditMarkKey{}, m), m
}

// enrichAudit fills, in the audit entries cmd appends during a call, the
// caller's role, address and method where the handler left them empty (a
// deploy's own entries know only the operator's name).
func enrichAudit(ctx context.Context, cmd *raftcmdv1.Command) {
	m, ok := ctx.Value(auditMarkKey{}).(*auditMark)
	if !ok {
		return
	}
	for _, mu := range cmd.GetMutations() {
		a := mu.GetAppend()
		if a == nil || a.GetTable() != schema.Audit.Name() {
			continue
		}
		e := new(deployv1.AuditEntry)
		if proto.Unmarshal(a.GetValue(), e) != nil || e.GetMethod() != "" {
			continue
		}
		e.CallerRole, e.Address, e.Method = m.who.GetCallerRole(), m.who.GetAddress(), m.who.GetMethod()
		if b, err := (proto.MarshalOptions{Deterministic: true}).Marshal(e); err == nil {
			a.Value = b
		}
	}
}

// skipAudit tells the interceptor that this call changed nothing worth an
// entry (a repeated poll).
func skipAudit(ctx context.Context) {
	if m, ok := ctx.Value(auditMarkKey{}).(*auditMark); ok {
		m.wrote.Store(true)
	}
}

// noteAudited records in ctx's mark that cmd appended to the audit.
func noteAudited(ctx context.Context, cmd *raftcmdv1.Command) {
	m, ok := ctx.Value(auditMarkKey{}).(*auditMark)
	if !ok {
		return
	}
	for _, mu := range cmd.GetMutations() {
		if a := mu.GetAppend(); a != nil && a.GetTable() == schema.Audit.Name() {
			m.wrote.Store(true)
			return
		}
	}
}

// auditUnary is the unary audit interceptor (after the Authorizer's).
func (c *Controller) auditUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !Policy[info.FullMethod].Audit {
		return handler(ctx, req)
	}
	hctx, mark := withAuditMark(ctx, info.FullMethod)
	resp, err := handler(hctx, req)
	if err == nil && mark.wrote.Load() {
		return resp, err
	}
	c.auditCall(ctx, info.FullMethod, req, resp, err)
	return resp, err
}

// auditStream is the stream audit interceptor: the first message received
// is the request summarized.
func (c *Controller) auditStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !Policy[info.FullMethod].Audit {
		return handler(srv, ss)
	}
	hctx, mark := withAuditMark(ss.Context(), info.FullMethod)
	as := &auditedStream{ServerStream: ss, ctx: hctx}
	err := handler(srv, as)
	if err == nil && mark.wrote.Load() {
		return err
	}
	c.auditCall(ss.Context(), info.FullMethod, as.first, nil, err)
	return err
}

type auditedStream struct {
	grpc.ServerStream
	ctx   context.Context
	first any
}

func (s *auditedStream) Context() context.Context { return s.ctx }

func (s *auditedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && s.first == nil {
		s.first = m
	}
	return err
}

// auditCall records one call.
func (c *Controller) auditCall(ctx context.Context, method string, req, resp any, err error) {
	e := callEntry(ctx, method, req, resp, err)
	e.UnixMillis = c.cfg.Clock.Now().UnixMilli()
	// The call is answered whatever happens here, so the entry is written
	// even if the caller went away.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)() // but not past the controller's Close
	if werr := c.auditor.record(wctx, e); werr != nil {
		c.log.Error("recording a call in the audit failed", "err", werr, "method", method, "caller", e.GetOperator())
	}
}

// callEntry is the audit entry of one call.
func callEntry(ctx context.Context, method string, req, resp any, err error) *deployv1.AuditEntry {
	e := &deployv1.AuditEntry{Operator: "anonymous", Method: method, Result: "ok"}
	if id, ierr := pki.RemoteIdentity(ctx); ierr == nil {
		e.Operator, e.CallerRole = id.Name, roleString(id)
	}
	if j, ok := resp.(*controllerv1.JoinResponse); ok && err == nil {
		// A login: the caller had no certificate, the new one names it.
		e.Operator, e.CallerRole = j.GetName(), strings.ToLower(strings.TrimPrefix(j.GetRole().String(), "ROLE_"))
		if r := j.GetOperatorRole(); r != "" {
			e.CallerRole += "/" + r
		}
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		e.Address = p.Addr.String()
	}
	_, short, _ := strings.Cut(strings.TrimPrefix(method, "/"), ".v1.")
	e.Action = short
	if m, ok := req.(proto.Message); ok && m != nil {
		if s := Summarize(m); s != "" {
			e.Action += " " + s
		}
		fillScope(e, m.ProtoReflect())
	}
	if err != nil {
		st := status.Convert(err)
		e.Result = st.Code().String()
		e.Detail = truncate(st.Message(), 256)
	}
	return e
}

func roleString(id pki.Identity) string {
	if id.Role == pki.RoleOperator && id.OperatorRole != "" {
		return fmt.Sprintf("%s/%s", id.Role, id.OperatorRole)
	}
	return string(id.Role)
}

// fillScope copies the request's service, destination and host (or agent)
// into the entry's columns, for `kctl audit --service/--host`: from the
// request's own fields, else from a message field's (PullImage's pull).
func fillScope(e *deployv1.AuditEntry, m protoreflect.Message) {
	get := func(name string) string {
		if v := scalar(m, name); v != "" {
			return v
		}
		v := ""
		m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
			if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
				v = scalar(val.Message(), name)
			}
			return v == ""
		})
		return v
	}
	e.Service, e.Destination = get("service"), get("destination")
	if e.Host = get("host"); e.Host == "" {
		e.Host = get("agent")
	}
}

// scalar is m's string field name, "" if it has none.
func scalar(m protoreflect.Message, name string) string {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return ""
	}
	return truncate(m.Get(fd).String(), 128)
}

// secretName matches the names of fields a summary never shows: the same
// names the redaction walker's descriptor test treats as secret-looking
// (internal/deploy/redact_fields_test.go), and opaque payloads.
var secretName = regexp.MustCompile(`(?i)pass|secret|token|credential|private|user|content|cert|csr|key_pem|auth|payload|env|files`)

// Summarize is a short, secret-free description of a request: its set
// scalar fields as name=value (strings quoted and cut at 64 bytes), lists
// and maps as their length, messages one level deep (a oneof shows which
// case is set), fields with a secret-looking name and bytes never. At most
// 512 bytes.
func Summarize(m proto.Message) string {
	var b strings.Builder
	summarize(&b, m.ProtoReflect(), 0)
	return truncate(b.String(), 512)
}

func summarize(b *strings.Builder, m protoreflect.Message, depth int) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		if secretName.MatchString(name) || fd.Kind() == protoreflect.BytesKind {
			return true
		}
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "{") {
			b.WriteByte(' ')
		}
		switch {
		case fd.IsList():
			fmt.Fprintf(b, "%s=[%d]", name, v.List().Len())
		case fd.IsMap():
			fmt.Fprintf(b, "%s=[%d]", name, v.Map().Len())
		case fd.Message() != nil:
			if depth >= 2 {
				fmt.Fprintf(b, "%s={…}", name)
				break
			}
			fmt.Fprintf(b, "%s={", name)
			summarize(b, v.Message(), depth+1)
			b.WriteByte('}')
		case fd.Kind() == protoreflect.StringKind:
			fmt.Fprintf(b, "%s=%q", name, truncate(v.String(), 64))
		case fd.Kind() == protoreflect.EnumKind:
			if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
				fmt.Fprintf(b, "%s=%s", name, ev.Name())
			} else {
				fmt.Fprintf(b, "%s=%d", name, v.Enum())
			}
		default:
			fmt.Fprintf(b, "%s=%v", name, v.Interface())
		}
		return true
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// auditor group-commits audit entries: concurrent callers' entries go to
// Raft in one command (at most maxAuditBatch), each caller waiting for the
// commit of its own.
type auditor struct {
	apply func(context.Context, *raftcmdv1.Command) (*raftcmdv1.Result, error)

	mu      sync.Mutex
	pending []pendingAudit
	running bool
}

type pendingAudit struct {
	e    *deployv1.AuditEntry
	done chan error
}

// maxAuditBatch bounds one group commit (entries are at most a few KiB).
const maxAuditBatch = 1024

// record appends e to the audit and returns once it is committed.
func (a *auditor) record(ctx context.Context, e *deployv1.AuditEntry) error {
	done := make(chan error, 1)
	a.mu.Lock()
	a.pending = append(a.pending, pendingAudit{e: e, done: done})
	if !a.running {
		a.running = true
		go a.flush()
	}
	a.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes batches until nothing is pending. One flush runs at a time:
// entries arriving during a commit wait for the next, which is how they
// batch.
func (a *auditor) flush() {
	for {
		a.mu.Lock()
		batch := a.pending
		if len(batch) > maxAuditBatch {
			batch = batch[:maxAuditBatch]
		}
		a.pending = a.pending[len(batch):]
		if len(batch) == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		cmd := &raftcmdv1.Command{Mutations: make([]*raftcmdv1.Mutation, len(batch))}
		for i, p := range batch {
			cmd.Mutations[i] = schema.Audit.Append(p.e)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := a.apply(ctx, cmd)
		cancel()
		for _, p := range batch {
			p.done <- err
		}
	}
}
