package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/apierr"
	"github.com/kctl-dev/kctl/internal/locks"
	"github.com/kctl-dev/kctl/internal/rpcerr"
	"github.com/kctl-dev/kctl/internal/scheduler"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// Service implements deployv1.DeployService on every controller.
type Service struct {
	deployv1.UnimplementedDeployServiceServer

	Store  Store
	Agents Agents
	// Caller names the operator making the request (from its certificate).
	Caller func(ctx context.Context) (string, error)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

var _ deployv1.DeployServiceServer = (*Service)(nil)

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) caller(ctx context.Context) (string, error) {
	if s.Caller == nil {
		return "unknown", nil
	}
	name, err := s.Caller(ctx)
	if err != nil {
		return "", status.Error(codes.Unauthenticated, err.Error())
	}
	return name, nil
}

// NewID returns a deploy ID that sorts by time.
func NewID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Submit plans the deploy and records it, its plan and its lock in one
// write. Errors: Unauthenticated (no caller), InvalidArgument (a malformed
// request), Unavailable (a host's agent is unknown or not connected; no
// leader), FailedPrecondition (the lock is held), Aborted (the lock changed
// meanwhile), Internal.
func (s *Service) Submit(ctx context.Context, in *deployv1.SubmitRequest) (*deployv1.SubmitResponse, error) {
	rec, err := s.submit(ctx, in.GetRequest())
	if err != nil {
		return nil, err
	}
	return &deployv1.SubmitResponse{Deploy: rec}, nil
}

// submit plans req (a deploy or a lifecycle command) and records it, its
// plan, its lock and the desired state it sets in one write.
func (s *Service) submit(ctx context.Context, req *deployv1.Request) (*deployv1.Record, error) {
	operator, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	// Controllers store and forward secrets only sealed to each host's
	// agent: a plaintext value is refused before anything is written.
	if err := sealbox.CheckSealed(req); err != nil {
		return nil, status.Error(codes.InvalidArgument, "deploy: "+err.Error())
	}
	plan, err := scheduler.Plan(req, s.Agents)
	switch {
	case errors.Is(err, scheduler.ErrUnplaceable):
		return nil, unplaceableError(req, s.Agents, err)
	case err != nil:
		return nil, toStatus(err)
	}
	sealed, err := sealPlan(plan, req)
	if err != nil {
		return nil, toStatus(err)
	}
	now := s.now()
	rec := &deployv1.Record{
		Id: NewID(now), Request: Redact(req), Plan: sealed, State: deployv1.State_STATE_PENDING,
		Operator: operator, CreatedUnixMillis: now.UnixMilli(),
	}
	msg := req.GetMessage()
	if msg == "" {
		msg = locks.AutomaticMessage
	}
	lockKey := schema.LockKey(req.GetService(), req.GetDestination())
	lock := &deployv1.LockRecord{
		Service: req.GetService(), Destination: req.GetDestination(), Holder: operator, Message: msg,
		AcquiredUnixMillis: now.UnixMilli(), DeployId: rec.GetId(), Version: req.GetVersion(),
	}
	entry := func(action, result string) *deployv1.AuditEntry {
		return &deployv1.AuditEntry{UnixMillis: now.UnixMilli(), Operator: operator, Service: req.GetService(),
			Destination: req.GetDestination(), Version: req.GetVersion(), Action: action, Result: result, DeployId: rec.GetId()}
	}
	res, err := s.Store.Write(ctx, &raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{schema.Locks.IfAbsent(lockKey)},
		Mutations: append([]*raftcmdv1.Mutation{
			schema.Locks.Put(lockKey, lock),
			schema.Deploys.Put(rec.GetId(), rec),
			schema.Secrets.Put(rec.GetId(), req),
			schema.Audit.Append(entry("acquired the deploy lock", "ok")),
			schema.Audit.Append(entry(req.GetCommand()+" submitted", "ok")),
		}, desiredMutations(req, operator, now)...),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	if !res.GetApplied() {
		return nil, s.lockedError(ctx, req.GetService(), req.GetDestination())
	}
	return rec, nil
}

func (s *Service) lockedError(ctx context.Context, service, dest string) error {
	if err := s.Store.Sync(ctx); err != nil {
		return toStatus(err)
	}
	if l, _, ok := schema.Locks.Get(s.Store, schema.LockKey(service, dest)); ok {
		return apierr.LockHeld(l)
	}
	return status.Error(codes.Aborted, "the deploy lock changed while taking it; try again")
}

// unplaceableError is the Unavailable of a deploy whose hosts have no usable
// agent, naming them in a typed detail (apierr) for the client.
func unplaceableError(req *deployv1.Request, fleet scheduler.Fleet, err error) error {
	msg := strings.TrimPrefix(err.Error(), "scheduler: ")
	byState := map[scheduler.AgentState][]string{}
	for _, h := range scheduler.AllHosts(req) {
		st := fleet.AgentState(h)
		byState[st] = append(byState[st], h)
	}
	if down := byState[scheduler.AgentDisconnected]; len(down) > 0 {
		sort.Strings(down)
		return apierr.AgentsUnavailable(codes.Unavailable, msg, apierr.ReasonAgentNotConnected, down)
	}
	if unknown := byState[scheduler.AgentUnknown]; len(unknown) > 0 {
		sort.Strings(unknown)
		return apierr.AgentsUnavailable(codes.Unavailable, msg, apierr.ReasonAgentNotEnrolled, unknown)
	}
	return status.Error(codes.Unavailable, msg)
}

// Get reports a deploy and its steps. Errors: NotFound, Unavailable (no
// leader to sync with), Canceled, DeadlineExceeded.
func (s *Service) Get(ctx context.Context, in *deployv1.GetRequest) (*deployv1.GetResponse, error) {
	if err := s.Store.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	rec, steps, err := s.load(in.GetId())
	if err != nil {
		return nil, err
	}
	return &deployv1.GetResponse{Deploy: rec, Steps: steps}, nil
}

func (s *Service) load(id string) (*deployv1.Record, []*deployv1.StepRecord, error) {
	rec, _, ok := schema.Deploys.Get(s.Store, id)
	if !ok {
		return nil, nil, status.Errorf(codes.NotFound, "no deploy %q (list them with `kctl deploys`)", id)
	}
	return rec, schema.Steps.Values(s.Store, schema.StepKey(id, "")), nil
}

// List lists deploys, newest first. Errors: Unavailable, Canceled,
// DeadlineExceeded.
func (s *Service) List(ctx context.Context, in *deployv1.ListRequest) (*deployv1.ListResponse, error) {
	if err := s.Store.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	var out []*deployv1.Record
	for _, rec := range schema.Deploys.Values(s.Store, "") {
		if in.GetService() != "" && rec.GetRequest().GetService() != in.GetService() {
			continue
		}
		out = append(out, rec)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetCreatedUnixMillis() > out[j].GetCreatedUnixMillis() })
	if n := int(in.GetLimit()); n > 0 && len(out) > n {
		out = out[:n]
	}
	return &deployv1.ListResponse{Deploys: out}, nil
}

// Watch streams the deploy after every change until it ends. Errors:
// NotFound, Unavailable, Canceled, DeadlineExceeded.
func (s *Service) Watch(in *deployv1.WatchRequest, stream grpc.ServerStreamingServer[deployv1.WatchResponse]) error {
	if err := s.Store.Sync(stream.Context()); err != nil {
		return toStatus(err)
	}
	changes, stop := s.Store.Watch()
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last []byte
	var lastVersions []uint64
	var lastSent time.Time
	var wake <-chan time.Time
	for {
		// Decode and compare only when the deploy's records changed: most
		// store changes are other deploys', commands' or presence writes.
		// A change of the deploy record (a phase done, the end) is sent at
		// once; step changes at most every watchInterval, as a deploy of
		// many hosts changes steps hundreds of times a second.
		v := s.versions(in.GetId())
		changed := lastVersions == nil || !slices.Equal(v, lastVersions)
		if changed && lastVersions != nil && v[0] == lastVersions[0] {
			if wait := watchInterval - time.Since(lastSent); wait > 0 {
				changed = false
				if wake == nil {
					wake = time.After(wait)
				}
			}
		}
		if changed {
			wake = nil
			rec, steps, err := s.load(in.GetId())
			if err != nil {
				return err
			}
			lastVersions = v
			resp := &deployv1.WatchResponse{Deploy: rec, Steps: steps}
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
			if string(b) != string(last) {
				if err := stream.Send(resp); err != nil {
					return err
				}
				last, lastSent = b, time.Now()
			}
			if Ended(rec.GetState()) {
				return nil
			}
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-changes:
		case <-wake:
			wake = nil
		case <-tick.C:
		}
	}
}

// watchInterval is the least time between two Watch responses that differ
// only in steps.
const watchInterval = 100 * time.Millisecond

// versions lists the versions of a deploy's record and step records: they
// change whenever what Watch sends does.
func (s *Service) versions(id string) []uint64 {
	steps := schema.Steps.Raw(s.Store, schema.StepKey(id, ""))
	out := make([]uint64, 0, 1+len(steps))
	out = append(out, schema.Deploys.Version(s.Store, id))
	for _, st := range steps {
		out = append(out, st.ModifyIndex)
	}
	return out
}

// Cancel asks the leader to stop the deploy between steps. Errors:
// Unauthenticated, NotFound, Unavailable, Canceled, DeadlineExceeded.
func (s *Service) Cancel(ctx context.Context, in *deployv1.CancelRequest) (*deployv1.CancelResponse, error) {
	operator, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Store.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	for {
		rec, v, ok := schema.Deploys.Get(s.Store, in.GetId())
		if !ok {
			return nil, status.Errorf(codes.NotFound, "no deploy %q", in.GetId())
		}
		if Ended(rec.GetState()) || rec.GetCancelRequested() {
			return &deployv1.CancelResponse{Deploy: rec}, nil
		}
		rec.CancelRequested, rec.CancelledBy = true, operator
		res, err := s.Store.Write(ctx, &raftcmdv1.Command{
			Preconditions: []*raftcmdv1.Precondition{schema.Deploys.IfVersion(rec.GetId(), v)},
			Mutations: []*raftcmdv1.Mutation{schema.Deploys.Put(rec.GetId(), rec), schema.Audit.Append(&deployv1.AuditEntry{
				UnixMillis: s.now().UnixMilli(), Operator: operator, Service: rec.GetRequest().GetService(),
				Destination: rec.GetRequest().GetDestination(), Version: rec.GetRequest().GetVersion(),
				Action: "cancel requested", Result: "ok", DeployId: rec.GetId(),
			})},
		})
		if err != nil {
			return nil, toStatus(err)
		}
		if res.GetApplied() {
			return &deployv1.CancelResponse{Deploy: rec}, nil
		}
	}
}

// LockStatus reports a lock (none when it is free). Errors: Unavailable,
// Canceled, DeadlineExceeded.
func (s *Service) LockStatus(ctx context.Context, in *deployv1.LockStatusRequest) (*deployv1.LockStatusResponse, error) {
	if err := s.Store.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	l, _, ok := schema.Locks.Get(s.Store, schema.LockKey(in.GetService(), in.GetDestination()))
	if !ok {
		return &deployv1.LockStatusResponse{}, nil
	}
	return &deployv1.LockStatusResponse{Lock: l}, nil
}

// AcquireLock takes a lock by hand (`kctl lock acquire -m MSG`). Errors:
// Unauthenticated, InvalidArgument (no message), FailedPrecondition (held),
// Aborted, Unavailable.
func (s *Service) AcquireLock(ctx context.Context, in *deployv1.AcquireLockRequest) (*deployv1.AcquireLockResponse, error) {
	operator, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.GetMessage()) == "" {
		return nil, status.Error(codes.InvalidArgument, "a lock needs a message: kctl lock acquire -m \"why\"")
	}
	now := s.now()
	key := schema.LockKey(in.GetService(), in.GetDestination())
	l := &deployv1.LockRecord{Service: in.GetService(), Destination: in.GetDestination(), Holder: operator,
		Message: in.GetMessage(), AcquiredUnixMillis: now.UnixMilli()}
	res, err := s.Store.Write(ctx, &raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{schema.Locks.IfAbsent(key)},
		Mutations: []*raftcmdv1.Mutation{schema.Locks.Put(key, l), schema.Audit.Append(&deployv1.AuditEntry{
			UnixMillis: now.UnixMilli(), Operator: operator, Service: in.GetService(), Destination: in.GetDestination(),
			Action: "acquired the deploy lock", Result: "ok", Detail: in.GetMessage(),
		})},
	})
	if err != nil {
		return nil, toStatus(err)
	}
	if !res.GetApplied() {
		return nil, s.lockedError(ctx, in.GetService(), in.GetDestination())
	}
	return &deployv1.AcquireLockResponse{Lock: l}, nil
}

// ReleaseLock releases a lock. A lock held by a running deploy is released
// by cancelling that deploy instead. Errors: Unauthenticated, NotFound (no
// lock), FailedPrecondition (held by a running deploy), Aborted (changed
// meanwhile), Unavailable.
func (s *Service) ReleaseLock(ctx context.Context, in *deployv1.ReleaseLockRequest) (*deployv1.ReleaseLockResponse, error) {
	operator, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Store.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	key := schema.LockKey(in.GetService(), in.GetDestination())
	l, v, ok := schema.Locks.Get(s.Store, key)
	if !ok {
		return nil, status.Error(codes.NotFound, "There is no deploy lock")
	}
	if id := l.GetDeployId(); id != "" {
		if rec, _, ok := schema.Deploys.Get(s.Store, id); ok && !Ended(rec.GetState()) {
			return nil, status.Errorf(codes.FailedPrecondition, "the lock is held by running deploy %s; cancel it with `kctl deploys cancel %s`", id, id)
		}
	}
	res, err := s.Store.Write(ctx, &raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{schema.Locks.IfVersion(key, v)},
		Mutations: []*raftcmdv1.Mutation{schema.Locks.Delete(key), schema.Audit.Append(&deployv1.AuditEntry{
			UnixMillis: s.now().UnixMilli(), Operator: operator, Service: in.GetService(), Destination: in.GetDestination(),
			Action: "released the deploy lock", Result: "ok",
		})},
	})
	if err != nil {
		return nil, toStatus(err)
	}
	if !res.GetApplied() {
		return nil, status.Error(codes.Aborted, "the lock changed meanwhile; check `kctl lock status`")
	}
	return &deployv1.ReleaseLockResponse{}, nil
}

// maxAuditPageBytes bounds one page of the raw audit chain, well under
// gRPC's 4 MiB message limit.
const maxAuditPageBytes = 1 << 20

// Audit queries the audit history, oldest first: entries written before
// the hash chain existed, then the chain's. With in.chain it returns the
// raw chain instead (links and checkpoint, unfiltered) for a client to
// verify. Errors: Unavailable, Canceled, DeadlineExceeded.
func (s *Service) Audit(ctx context.Context, in *deployv1.AuditRequest) (*deployv1.AuditResponse, error) {
	if err := s.Store.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	legacy := schema.Audit.Legacy(s.Store)
	rows := schema.Audit.Rows(s.Store)
	if in.GetChain() {
		resp := &deployv1.AuditResponse{Legacy: uint64(len(legacy))}
		size := 0
		for _, r := range rows {
			l := r.Link
			if l.GetSeq() <= in.GetAfterSeq() {
				continue
			}
			if size += len(l.GetValue()) + 96; size > maxAuditPageBytes && len(resp.Links) > 0 {
				resp.More = true
				break
			}
			resp.Links = append(resp.Links, &deployv1.AuditLink{Seq: l.GetSeq(), PrevHash: l.GetPrevHash(), Entry: l.GetValue(), Hash: l.GetHash()})
		}
		if cp, _, ok := schema.AuditCheckpoint.Get(s.Store, schema.KeyCheckpoint); ok {
			resp.Checkpoint = cp
		}
		return resp, nil
	}
	all := legacy
	for _, r := range rows {
		e := r.Value
		e.Seq, e.PrevHash, e.Hash = r.Link.GetSeq(), r.Link.GetPrevHash(), r.Link.GetHash()
		all = append(all, e)
	}
	var out []*deployv1.AuditEntry
	for _, e := range all {
		switch {
		case in.GetService() != "" && e.GetService() != in.GetService(),
			in.GetDestination() != "" && e.GetDestination() != in.GetDestination(),
			in.GetOperator() != "" && e.GetOperator() != in.GetOperator(),
			in.GetHost() != "" && e.GetHost() != in.GetHost(),
			in.GetSinceUnixMillis() > 0 && e.GetUnixMillis() < in.GetSinceUnixMillis():
			continue
		}
		out = append(out, e)
	}
	if n := int(in.GetLimit()); n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return &deployv1.AuditResponse{Entries: out}, nil
}

// Versions asks every host for the versions present as containers and
// returns those present on all of them, newest first. Errors: Unavailable
// (a host could not be asked or failed), DeadlineExceeded (a host did not
// answer within 30s).
func (s *Service) Versions(ctx context.Context, in *deployv1.VersionsRequest) (*deployv1.VersionsResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	type q struct{ role, host, id string }
	var qs []q
	nonce := NewID(s.now())
	roles := make([]string, 0, len(in.GetRoles()))
	for r := range in.GetRoles() {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, role := range roles {
		for _, h := range in.GetRoles()[role].GetHosts() {
			id := "versions." + nonce + "." + role + "." + h
			op := &agentv1.Operation{Op: &agentv1.Operation_ListVersions{ListVersions: &agentv1.ListVersions{
				Service: in.GetService(), Role: role, Destination: in.GetDestination()}}}
			if err := s.Agents.Send(ctx, h, id, op); err != nil {
				return nil, status.Errorf(codes.Unavailable, "ask %s for its versions: %v", h, err)
			}
			qs = append(qs, q{role, h, id})
		}
	}
	count := map[string]int{}
	order := map[string]int{}
	changes, stop := s.Store.Watch()
	defer stop()
	for _, x := range qs {
		for {
			res, ok := s.Agents.Result(x.host, x.id)
			if ok {
				if !res.GetOk() {
					return nil, status.Errorf(codes.Unavailable, "%s: %s", x.host, res.GetError())
				}
				for i, v := range res.GetVersions() {
					count[v]++
					if _, seen := order[v]; !seen || i < order[v] {
						order[v] = i
					}
				}
				break
			}
			select {
			case <-ctx.Done():
				return nil, status.Errorf(codes.DeadlineExceeded, "agent %s did not report its versions in time", x.host)
			case <-changes:
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	var versions []string
	for v, n := range count {
		if n == len(qs) {
			versions = append(versions, v)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return order[versions[i]] < order[versions[j]] })
	return &deployv1.VersionsResponse{Versions: versions}, nil
}

// toStatus translates err at the edge of the deploy RPCs (rpcerr.Status).
func toStatus(err error) error { return rpcerr.Status(err) }
