// Package dispatcher holds agent sessions on a controller, leader or not:
// it serves the agents' Session streams, delivers the commands recorded in
// the replicated store for them, records their results and facts, and
// records which agents this controller holds (presence).
//
// The dispatcher sees the store and the rest of the controller only through
// Cluster, so it is unit-tested against MemCluster, an in-memory twin, with
// no Raft and no network (swarmkit's manager/dispatcher is the model).
//
// Presence is not a Raft write per heartbeat: each controller keeps its
// sessions in memory and records them as one PresenceRecord per controller,
// only when it changes (debounced): a session starts or ends, an agent
// gone longer than GoneRetention is dropped. Presence merges the records:
// an agent is connected if a live controller (Cluster.Alive: answered a
// probe within the grace, no Raft involved) lists it as connected; of two
// such, the later session wins. A controller that dies stops being alive;
// its agents reconnect elsewhere within seconds and the new controller's
// record wins. No leader ever marks an agent down, so a leader change
// cannot flap healthy agents.
package dispatcher

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/netlimit"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/wirelimit"
)

// Limits of the dispatcher's own (what an agent may send is bounded in
// internal/wirelimit).
const (
	// SessionBurst and SessionEvery bound how often one agent may start a
	// session on a controller (each start may write facts and presence):
	// SessionBurst at once, then one per SessionEvery.
	SessionBurst = 5
	SessionEvery = 2 * time.Second
	// GoneRetention is how long an agent whose session ended stays in the
	// presence record (as disconnected, with when it was last seen).
	GoneRetention = time.Hour
)

// Cluster is what the dispatcher needs of its controller and the store.
// The controller implements it over raftstore; MemCluster is its in-memory
// twin for tests.
type Cluster interface {
	// View returns the local state.
	View() *raftstore.Snapshot
	// Watch notifies after state changes (coalesced), as raftstore's.
	Watch() (<-chan struct{}, func())
	// PutSince lists the keys of table written after index; ok is false
	// when that is no longer known (as raftstore's).
	PutSince(table string, index uint64) (keys []string, ok bool)
	// Write applies cmd through the leader, from any controller; on return
	// the local state includes it. The dispatcher's writes are harmless to
	// apply twice.
	Write(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error)
	// Controllers lists every controller's API address, for the agents.
	Controllers() []string
	// Alive reports whether the controller named name answered recently
	// (in memory; the dispatcher asks about other controllers only).
	Alive(name string) bool
}

// Config configures a Dispatcher.
type Config struct {
	// Name is this controller's name.
	Name string
	// HeartbeatInterval is the agents' heartbeat interval (default 5s).
	HeartbeatInterval time.Duration
	// PresenceInterval is how often presence is checked for a change to
	// record (default 2s): expired gone agents, a failed write.
	PresenceInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnRemoved is called once when this controller's node record is
	// deleted (it was removed from the cluster), after its sessions end.
	OnRemoved func()
	// Removed, when set, decides whether this controller was removed from
	// the cluster (the controller knows its own certificate and whether it
	// has seen its own node record); by default, a missing node record once
	// the cluster state has arrived means removed.
	Removed func() bool
}

// Dispatcher serves agent sessions on one controller. New starts nothing;
// Run does the background work until its context ends; Close ends every
// session.
type Dispatcher struct {
	agentv1.UnimplementedSessionServiceServer
	cfg     Config
	cluster Cluster
	log     *slog.Logger
	results *resultWriter

	// ctx bounds background writes (facts); Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg tracks the facts writers.
	wg sync.WaitGroup

	// mu guards sessions and gone.
	mu       sync.Mutex
	sessions map[string]*session
	// gone remembers agents whose session ended here (name → last seen).
	gone map[string]*controllerv1.AgentPresence
	// starts bounds how often each agent may start a session here.
	starts map[string]*netlimit.Bucket

	dirty chan struct{} // signalled when presence changed
	// closing is set by Close: the presence record is left as it was (as
	// after a crash), so its agents do not flap to disconnected while they
	// reconnect to other controllers.
	closing atomic.Bool
	// removed is set once this controller's node record is deleted (kctl
	// cluster remove): it hands its agents to the other controllers.
	removed atomic.Bool
	// lastScan is the store index up to which new commands were delivered
	// (Run's goroutine only).
	lastScan uint64
}

var _ agentv1.SessionServiceServer = (*Dispatcher)(nil)

// New returns a Dispatcher for the controller cfg.Name.
func New(cfg Config, cluster Cluster) *Dispatcher {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.PresenceInterval == 0 {
		cfg.PresenceInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Dispatcher{
		cfg: cfg, cluster: cluster, log: cfg.Logger,
		sessions: map[string]*session{}, gone: map[string]*controllerv1.AgentPresence{}, dirty: make(chan struct{}, 1),
		starts: map[string]*netlimit.Bucket{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.results = newResultWriter(d)
	return d
}

// admitSession takes a token from name's session bucket.
func (d *Dispatcher) admitSession(name string) bool {
	d.mu.Lock()
	b := d.starts[name]
	if b == nil {
		b = netlimit.NewBucket(1/SessionEvery.Seconds(), SessionBurst)
		d.starts[name] = b
	}
	d.mu.Unlock()
	return b.Allow()
}

func (d *Dispatcher) markDirty() {
	select {
	case d.dirty <- struct{}{}:
	default:
	}
}

// remove takes s out of the session map (if it is still there).
func (d *Dispatcher) remove(s *session) {
	d.mu.Lock()
	if d.sessions[s.name] == s {
		delete(d.sessions, s.name)
		d.gone[s.name] = &controllerv1.AgentPresence{Name: s.name, Connected: false, LastSeenUnixMillis: s.lastSeen.Load(), Version: s.version, ProtocolVersion: s.protocol}
	}
	d.mu.Unlock()
	d.markDirty()
}

// snapshot returns the sessions held now.
func (d *Dispatcher) snapshot() []*session {
	d.mu.Lock()
	defer d.mu.Unlock()
	ss := make([]*session, 0, len(d.sessions))
	for _, s := range d.sessions {
		ss = append(ss, s)
	}
	return ss
}

// cancelAll ends every session with cause.
func (d *Dispatcher) cancelAll(cause error) {
	for _, s := range d.snapshot() {
		s.cancel(cause)
	}
}

// Session serves one agent's stream. Errors: InvalidArgument (no Hello, or
// a Hello naming another agent), Unauthenticated (revoked, via the
// Authorizer), Unavailable (controller stopping or removed), Aborted
// (replaced by a newer session of the same agent), DeadlineExceeded (the
// agent missed its heartbeats).
func (d *Dispatcher) Session(stream agentv1.SessionService_SessionServer) error {
	id, err := pki.RemoteIdentity(stream.Context())
	if err != nil {
		return err
	}
	if d.removed.Load() || d.closing.Load() {
		return status.Error(codes.Unavailable, "controller: this controller is leaving the cluster; connect to another one")
	}
	if !d.admitSession(id.Name) {
		return status.Errorf(codes.ResourceExhausted, "controller: agent %s starts sessions too often (at most %d at once, then one per %s); retry later", id.Name, SessionBurst, SessionEvery)
	}
	s, hello, err := d.welcome(stream, id.Name)
	if err != nil {
		return err
	}
	d.register(s)
	d.log.Info("agent connected", "agent", s.name, "version", s.version, "protocol", protocol.Normalize(s.protocol))
	var endErr error
	defer func() {
		s.cancel(endErr)
		d.log.Info("agent disconnected", "agent", s.name, "cause", endErr)
	}()
	if facts := hello.GetFacts(); facts != nil {
		d.wg.Go(func() { d.recordFacts(s.name, facts) })
	}
	d.deliverPending(s, 0)
	endErr = d.serve(s)
	return endErr
}

// welcome reads the agent's Hello and answers with a Welcome.
func (d *Dispatcher) welcome(stream agentv1.SessionService_SessionServer, name string) (*session, *agentv1.Hello, error) {
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	hello := first.GetHello()
	if hello == nil {
		return nil, nil, status.Error(codes.InvalidArgument, "controller: the first session message must be a Hello")
	}
	if hello.GetName() != name {
		return nil, nil, status.Errorf(codes.InvalidArgument, "controller: Hello names %q but the certificate names %q", hello.GetName(), name)
	}
	if err := wirelimit.ValidateHello(hello); err != nil {
		return nil, nil, err
	}
	now := time.Now().UnixMilli()
	s := &session{name: name, version: hello.GetVersion(), protocol: hello.GetProtocolVersion(), stream: stream, d: d, sent: map[string]time.Time{}, since: now}
	s.lastSeen.Store(now)
	if err := s.send(&agentv1.SessionResponse{Msg: &agentv1.SessionResponse_Welcome{Welcome: &agentv1.Welcome{
		Controller: d.cfg.Name, HeartbeatIntervalMillis: d.heartbeatMillis(), Controllers: d.cluster.Controllers(), CaTrust: d.caTrust(),
	}}}); err != nil {
		return nil, nil, err
	}
	return s, hello, nil
}

// caTrust is the cluster's pki.TrustID when the Cluster reports it (a CA
// rotation: agents whose trust differs renew at once).
func (d *Dispatcher) caTrust() string {
	if t, ok := d.cluster.(interface{ CATrust() string }); ok {
		return t.CATrust()
	}
	return ""
}

func (d *Dispatcher) heartbeatMillis() uint32 { return uint32(d.cfg.HeartbeatInterval.Milliseconds()) }

// register makes s the agent's session here, ending an older one.
func (d *Dispatcher) register(s *session) {
	d.mu.Lock()
	old := d.sessions[s.name]
	d.sessions[s.name] = s
	delete(d.gone, s.name)
	d.mu.Unlock()
	if old != nil {
		old.cancel(status.Error(codes.Aborted, "controller: replaced by a newer session of the same agent"))
	}
	d.markDirty()
}

// serve answers s's heartbeats and takes its results until the stream or
// the session ends.
func (d *Dispatcher) serve(s *session) error {
	for {
		m, err := s.stream.Recv()
		if err == nil {
			if dead := s.dead.Load(); dead != nil {
				err = *dead
			}
		}
		if err != nil {
			return err
		}
		s.lastSeen.Store(time.Now().UnixMilli())
		switch msg := m.GetMsg().(type) {
		case *agentv1.SessionRequest_Heartbeat:
			if err := s.send(&agentv1.SessionResponse{Msg: &agentv1.SessionResponse_HeartbeatAck{HeartbeatAck: &agentv1.HeartbeatAck{
				HeartbeatIntervalMillis: d.heartbeatMillis(), Controllers: d.cluster.Controllers(), CaTrust: d.caTrust(),
			}}}); err != nil {
				return err
			}
		case *agentv1.SessionRequest_Result:
			if err := wirelimit.ValidateResult(msg.Result); err != nil {
				return err
			}
			d.results.submit(s, msg.Result)
		}
	}
}

// deliverPending sends s every pending command recorded for its agent.
func (d *Dispatcher) deliverPending(s *session, resendAfter time.Duration) {
	for _, rec := range schema.Commands.Values(d.cluster.View(), schema.CommandKey(s.name, "")) {
		if rec.GetState() == controllerv1.CommandState_COMMAND_STATE_PENDING {
			s.deliver(rec, resendAfter)
		}
	}
}

// Kick ends the agent's session here (after `kctl agents remove`).
func (d *Dispatcher) Kick(name string) {
	d.mu.Lock()
	s := d.sessions[name]
	delete(d.gone, name)
	delete(d.starts, name)
	d.mu.Unlock()
	d.markDirty()
	if s != nil {
		s.cancel(status.Error(codes.Unauthenticated, "pki: certificate revoked: agent removed"))
	}
}

// Close ends every session (their agents reconnect to other controllers)
// and refuses new ones; the presence record is left as it is.
func (d *Dispatcher) Close() {
	d.closing.Store(true)
	d.cancelAll(status.Error(codes.Unavailable, "controller: shutting down; reconnect to another controller"))
	d.cancel()
}

// Sessions reports how many agent sessions this controller holds.
func (d *Dispatcher) Sessions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sessions)
}

// Run delivers new commands as they are committed, resends stale
// deliveries, ends silent sessions, writes results and records presence,
// until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	ch, stop := d.cluster.Watch()
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { d.presenceLoop(ctx) })
	wg.Go(func() { d.results.run(ctx) })
	defer d.wg.Wait()
	defer wg.Wait()
	sweep := time.NewTicker(15 * time.Second)
	defer sweep.Stop()
	watchdog := time.NewTicker(d.cfg.HeartbeatInterval)
	defer watchdog.Stop()
	// Replace the record a previous run of this controller left (its
	// sessions are gone) soon, not at the first tick.
	d.markDirty()
	// Catch up with what was applied before the watch started.
	d.checkRemoved()
	d.scan()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			d.checkRemoved()
			d.scan()
		case <-watchdog.C:
			d.endSilent()
		case <-sweep.C:
			// A delivery whose result never got recorded (a lost result
			// write) is retried; the agent answers from its journal.
			for _, s := range d.snapshot() {
				d.deliverPending(s, 30*time.Second)
			}
		}
	}
}

// endSilent ends the sessions whose agent stopped sending (no heartbeat for
// three intervals): one ticker for all sessions.
func (d *Dispatcher) endSilent() {
	for _, s := range d.snapshot() {
		if time.Since(time.UnixMilli(s.lastSeen.Load())) > 3*d.cfg.HeartbeatInterval {
			s.cancel(status.Error(codes.DeadlineExceeded, "controller: agent missed its heartbeats"))
		}
	}
}

// checkRemoved notices that this controller was removed from the cluster:
// it stops serving sessions and calls OnRemoved.
func (d *Dispatcher) checkRemoved() {
	if d.removed.Load() {
		return
	}
	if d.cfg.Removed != nil {
		if !d.cfg.Removed() {
			return
		}
	} else {
		v := d.cluster.View()
		if !schema.Cluster.Has(v, schema.KeyCA) {
			return // no state yet (joining)
		}
		if schema.Nodes.Has(v, d.cfg.Name) {
			return
		}
	}
	d.removed.Store(true)
	d.markDirty()
	d.log.Error("this controller was removed from the cluster; its agents move to the others (stop it, or join it again with a new data dir)")
	d.cancelAll(status.Error(codes.Unavailable, "controller: this controller was removed from the cluster; connect to another one"))
	if d.cfg.OnRemoved != nil {
		d.cfg.OnRemoved()
	}
}

// scan delivers commands created since the last scan to local sessions.
// It reads only the commands written since (the store's put log), falling
// back to the whole table when the log does not reach back that far.
func (d *Dispatcher) scan() {
	v := d.cluster.View()
	last := d.lastScan
	d.lastScan = v.Index()
	var recs []raftstore.Record
	if keys, ok := d.cluster.PutSince(schema.Commands.Name(), last); ok {
		slices.Sort(keys)
		keys = slices.Compact(keys)
		for _, k := range keys {
			if r, ok := v.Get(schema.Commands.Name(), k); ok {
				recs = append(recs, r)
			}
		}
	} else {
		recs = schema.Commands.Raw(v, "")
	}
	for _, r := range recs {
		if r.CreateIndex <= last {
			continue
		}
		rec := schema.Commands.Decode(r)
		if rec.GetState() != controllerv1.CommandState_COMMAND_STATE_PENDING {
			continue
		}
		d.mu.Lock()
		s := d.sessions[rec.GetAgent()]
		d.mu.Unlock()
		if s != nil {
			s.deliver(rec, 0)
		}
	}
}

// recordFacts stores the facts an agent reported, if they changed.
func (d *Dispatcher) recordFacts(name string, facts *agentv1.Facts) {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		rec, ver, ok := schema.Agents.Get(d.cluster.View(), name)
		if !ok || proto.Equal(rec.GetFacts(), facts) {
			return
		}
		rec.Facts = facts
		rec.FactsUnixMillis = time.Now().UnixMilli()
		res, err := d.cluster.Write(ctx, &raftcmdv1.Command{
			Preconditions: []*raftcmdv1.Precondition{schema.Agents.IfVersion(name, ver)},
			Mutations:     []*raftcmdv1.Mutation{schema.Agents.Put(name, rec)},
		})
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("recording agent facts failed", "agent", name, "err", err)
			}
			return
		}
		if res.GetApplied() {
			return
		}
		// A concurrent writer won; the local state now includes its write.
	}
}
