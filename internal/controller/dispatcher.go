package controller

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// The dispatcher runs on every controller, leader or not: it holds the
// Session streams of the agents connected here, delivers the commands
// recorded in Raft for them, and records their results (resultWriter).
//
// Presence is not a Raft write per heartbeat: each controller keeps its
// sessions in memory and records them as one PresenceRecord per controller,
// at once (debounced) when a session starts or ends and every
// PresenceInterval otherwise. `kctl agents` merges the records: an agent is
// connected if a controller whose record is fresh (written within
// presenceGrace) lists it as connected. A controller that dies stops
// refreshing its record; its agents reconnect elsewhere within seconds and
// the new controller's record wins. No leader ever marks an agent down, so a
// leader change cannot flap healthy agents.
type dispatcher struct {
	agentv1.UnimplementedSessionServiceServer
	c *Controller

	// mu guards sessions and gone.
	mu       sync.Mutex
	sessions map[string]*session
	// gone remembers agents whose session ended here (name → last seen).
	gone map[string]*controllerv1.AgentPresence

	dirty chan struct{} // signalled when presence changed
	// closing is set when the controller stops: its presence record is left
	// as it was (as after a crash), so its agents do not flap to
	// disconnected while they reconnect to other controllers.
	closing atomic.Bool
	// removed is set once this controller's node record is deleted (kctl
	// cluster remove): it hands its agents to the other controllers.
	removed atomic.Bool
	// lastScan is the store index up to which new commands were delivered.
	lastScan uint64
}

// session is one agent's stream on this controller.
type session struct {
	name, version string
	stream        agentv1.SessionService_SessionServer
	d             *dispatcher
	// dead holds why the session was ended (kicked, replaced, silent). The
	// handler, blocked in Recv, returns it on the agent's next message (or
	// when keepalive or shutdown closes the connection): one goroutine per
	// session, not two.
	dead     atomic.Pointer[error]
	lastSeen atomic.Int64 // unix millis
	// sendMu serializes stream.Send.
	sendMu sync.Mutex
	// mu guards sent.
	mu sync.Mutex
	// sent maps command ids delivered in this session to when.
	sent map[string]time.Time
}

func newDispatcher(c *Controller) *dispatcher {
	return &dispatcher{c: c, sessions: map[string]*session{}, gone: map[string]*controllerv1.AgentPresence{}, dirty: make(chan struct{}, 1)}
}

func (d *dispatcher) markDirty() {
	select {
	case d.dirty <- struct{}{}:
	default:
	}
}

// cancel ends the session: it leaves the presence map at once and its
// handler returns cause on the next message.
func (s *session) cancel(cause error) {
	if !s.dead.CompareAndSwap(nil, &cause) {
		return
	}
	s.d.remove(s)
}

// remove takes s out of the session map (if it is still there).
func (d *dispatcher) remove(s *session) {
	d.mu.Lock()
	if d.sessions[s.name] == s {
		delete(d.sessions, s.name)
		d.gone[s.name] = &controllerv1.AgentPresence{Name: s.name, Connected: false, LastSeenUnixMillis: s.lastSeen.Load(), Version: s.version}
	}
	d.mu.Unlock()
	d.markDirty()
}

func (s *session) send(m *agentv1.SessionResponse) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(m)
}

// deliver sends a command unless this session already sent it recently.
func (s *session) deliver(rec *controllerv1.CommandRecord, resendAfter time.Duration) {
	if s.dead.Load() != nil {
		return
	}
	s.mu.Lock()
	at, done := s.sent[rec.GetId()]
	if done && (resendAfter == 0 || time.Since(at) < resendAfter) {
		s.mu.Unlock()
		return
	}
	s.sent[rec.GetId()] = time.Now()
	s.mu.Unlock()
	// Attempt numbers are per session; the agent dedupes by id.
	attempt := uint32(1)
	if done {
		attempt = 2
	}
	if err := s.send(&agentv1.SessionResponse{Msg: &agentv1.SessionResponse_Command{Command: &agentv1.Command{
		Id: rec.GetId(), Operation: rec.GetOperation(), Attempt: attempt,
	}}}); err != nil {
		s.cancel(err)
	}
}

func (s *session) forget(id string) {
	s.mu.Lock()
	delete(s.sent, id)
	s.mu.Unlock()
}

// Session serves one agent's stream. Errors: InvalidArgument (no Hello, or
// a Hello naming another agent), Unauthenticated (revoked, via the
// Authorizer), Unavailable (controller stopping).
func (d *dispatcher) Session(stream agentv1.SessionService_SessionServer) error {
	c := d.c
	id, err := pki.RemoteIdentity(stream.Context())
	if err != nil {
		return err
	}
	if d.removed.Load() || d.closing.Load() {
		return status.Error(codes.Unavailable, "controller: this controller is leaving the cluster; connect to another one")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "controller: the first session message must be a Hello")
	}
	if hello.GetName() != id.Name {
		return status.Errorf(codes.InvalidArgument, "controller: Hello names %q but the certificate names %q", hello.GetName(), id.Name)
	}
	s := &session{name: id.Name, version: hello.GetVersion(), stream: stream, d: d, sent: map[string]time.Time{}}
	s.lastSeen.Store(time.Now().UnixMilli())
	interval := uint32(c.cfg.HeartbeatInterval.Milliseconds())
	if err := s.send(&agentv1.SessionResponse{Msg: &agentv1.SessionResponse_Welcome{Welcome: &agentv1.Welcome{
		Controller: c.cfg.Name, HeartbeatIntervalMillis: interval, Controllers: c.controllerAddrs(),
	}}}); err != nil {
		return err
	}

	d.mu.Lock()
	old := d.sessions[s.name]
	d.sessions[s.name] = s
	delete(d.gone, s.name)
	d.mu.Unlock()
	if old != nil {
		old.cancel(status.Error(codes.Aborted, "controller: replaced by a newer session of the same agent"))
	}
	d.markDirty()
	c.log.Info("agent connected", "agent", s.name, "version", s.version)
	var endErr error
	defer func() {
		s.cancel(endErr)
		c.log.Info("agent disconnected", "agent", s.name, "cause", endErr)
	}()

	go c.recordFacts(s.name, hello.GetFacts())
	d.deliverPending(s, 0)

	for {
		m, err := stream.Recv()
		if err == nil {
			if dead := s.dead.Load(); dead != nil {
				err = *dead
			}
		}
		if err != nil {
			endErr = err
			return err
		}
		s.lastSeen.Store(time.Now().UnixMilli())
		switch msg := m.GetMsg().(type) {
		case *agentv1.SessionRequest_Heartbeat:
			if err := s.send(&agentv1.SessionResponse{Msg: &agentv1.SessionResponse_HeartbeatAck{HeartbeatAck: &agentv1.HeartbeatAck{
				HeartbeatIntervalMillis: interval, Controllers: c.controllerAddrs(),
			}}}); err != nil {
				endErr = err
				return err
			}
		case *agentv1.SessionRequest_Result:
			c.results.submit(s, msg.Result)
		}
	}
}

// deliverPending sends s every pending command recorded for its agent.
func (d *dispatcher) deliverPending(s *session, resendAfter time.Duration) {
	for _, rec := range schema.Commands.Values(d.c.store, schema.CommandKey(s.name, "")) {
		if rec.GetState() == controllerv1.CommandState_COMMAND_STATE_PENDING {
			s.deliver(rec, resendAfter)
		}
	}
}

// kick ends the agent's session here (after `kctl agents remove`).
func (d *dispatcher) kick(name string) {
	d.mu.Lock()
	s := d.sessions[name]
	delete(d.gone, name)
	d.mu.Unlock()
	if s != nil {
		s.cancel(status.Error(codes.Unauthenticated, "pki: certificate revoked: agent removed"))
	}
}

func (d *dispatcher) closeSessions() {
	d.closing.Store(true)
	d.mu.Lock()
	ss := make([]*session, 0, len(d.sessions))
	for _, s := range d.sessions {
		ss = append(ss, s)
	}
	d.mu.Unlock()
	for _, s := range ss {
		s.cancel(status.Error(codes.Unavailable, "controller: shutting down; reconnect to another controller"))
	}
}

// run delivers new commands as they are committed, resends stale
// deliveries, and records presence.
func (d *dispatcher) run(ctx context.Context) {
	ch, stop := d.c.store.Watch()
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { d.presenceLoop(ctx) })
	defer wg.Wait()
	sweep := time.NewTicker(15 * time.Second)
	defer sweep.Stop()
	watchdog := time.NewTicker(d.c.cfg.HeartbeatInterval)
	defer watchdog.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			d.checkRemoved()
			d.scan()
		case <-watchdog.C:
			// End sessions whose agent stopped sending (no heartbeat for
			// three intervals): one ticker for all sessions.
			d.mu.Lock()
			var silent []*session
			for _, s := range d.sessions {
				if time.Since(time.UnixMilli(s.lastSeen.Load())) > 3*d.c.cfg.HeartbeatInterval {
					silent = append(silent, s)
				}
			}
			d.mu.Unlock()
			for _, s := range silent {
				s.cancel(status.Error(codes.DeadlineExceeded, "controller: agent missed its heartbeats"))
			}
		case <-sweep.C:
			// A delivery whose result never got recorded (a lost result
			// write) is retried; the agent answers from its journal.
			d.mu.Lock()
			ss := make([]*session, 0, len(d.sessions))
			for _, s := range d.sessions {
				ss = append(ss, s)
			}
			d.mu.Unlock()
			for _, s := range ss {
				d.deliverPending(s, 30*time.Second)
			}
		}
	}
}

// checkRemoved notices that this controller was removed from the cluster:
// it stops serving sessions and reports NOT_SERVING.
func (d *dispatcher) checkRemoved() {
	c := d.c
	if d.removed.Load() {
		return
	}
	v := c.store.View()
	if ok := schema.Cluster.Has(v, schema.KeyCA); !ok {
		return // no state yet (joining)
	}
	if ok := schema.Nodes.Has(v, c.cfg.Name); ok {
		return
	}
	d.removed.Store(true)
	c.log.Error("this controller was removed from the cluster; its agents move to the others (stop it, or join it again with a new data dir)")
	c.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	d.mu.Lock()
	ss := make([]*session, 0, len(d.sessions))
	for _, s := range d.sessions {
		ss = append(ss, s)
	}
	d.mu.Unlock()
	for _, s := range ss {
		s.cancel(status.Error(codes.Unavailable, "controller: this controller was removed from the cluster; connect to another one"))
	}
}

// scan delivers commands created since the last scan to local sessions.
// It reads only the commands written since (the store's put log), falling
// back to the whole table when the log does not reach back that far.
func (d *dispatcher) scan() {
	v := d.c.store.View()
	last := d.lastScan
	d.lastScan = v.Index()
	var recs []raftstore.Record
	if keys, ok := d.c.store.PutSince(schema.Commands.Name(), last); ok {
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

// presenceGrace is how long a controller's presence record stays
// authoritative without a refresh. It covers a controller failover: agents
// of a dead controller show connected until they reconnect elsewhere, or
// disconnected after the grace.
// The 5 s floor covers an election under load, during which no controller
// can record presence.
func (c *Controller) presenceGrace() time.Duration {
	return max(3*c.cfg.HeartbeatInterval, 3*c.cfg.PresenceInterval, 5*time.Second)
}

func (d *dispatcher) presenceLoop(ctx context.Context) {
	c := d.c
	t := time.NewTicker(c.cfg.PresenceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.dirty:
			// Debounce: gather the connects of a reconnect storm.
			select {
			case <-ctx.Done():
				continue
			case <-time.After(100 * time.Millisecond):
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		d.writePresence(wctx)
		cancel()
	}
}

func (d *dispatcher) writePresence(ctx context.Context) {
	c := d.c
	if d.closing.Load() {
		return
	}
	now := time.Now()
	rec := &controllerv1.PresenceRecord{Controller: c.cfg.Name, WrittenUnixMillis: now.UnixMilli()}
	d.mu.Lock()
	for _, s := range d.sessions {
		rec.Agents = append(rec.Agents, &controllerv1.AgentPresence{Name: s.name, Connected: true, LastSeenUnixMillis: s.lastSeen.Load(), Version: s.version})
	}
	for name, g := range d.gone {
		if now.Sub(time.UnixMilli(g.GetLastSeenUnixMillis())) > time.Hour {
			delete(d.gone, name)
			continue
		}
		rec.Agents = append(rec.Agents, g)
	}
	d.mu.Unlock()
	slices.SortFunc(rec.Agents, func(a, b *controllerv1.AgentPresence) int {
		if a.GetName() < b.GetName() {
			return -1
		}
		if a.GetName() > b.GetName() {
			return 1
		}
		return 0
	})
	if _, _, ok := schema.Nodes.Get(c.store.View(), c.cfg.Name); !ok {
		return // removed from the cluster
	}
	if _, err := c.applyRepeatable(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Presence.Put(c.cfg.Name, rec)}}); err != nil {
		c.log.Warn("recording presence failed", "err", err)
	}
}

// presenceView is one agent's merged presence.
type presenceView struct {
	connected  bool
	controller string
	lastSeen   int64
	version    string
}

// presence merges every controller's presence record.
func (c *Controller) presence(v *raftstore.Snapshot) map[string]presenceView {
	out := map[string]presenceView{}
	now := time.Now()
	grace := c.presenceGrace()
	for _, pr := range schema.Presence.Values(v, "") {
		fresh := now.Sub(time.UnixMilli(pr.GetWrittenUnixMillis())) <= grace
		for _, a := range pr.GetAgents() {
			p := presenceView{connected: a.GetConnected() && fresh, controller: pr.GetController(), lastSeen: a.GetLastSeenUnixMillis(), version: a.GetVersion()}
			cur, ok := out[a.GetName()]
			switch {
			case !ok,
				p.connected && !cur.connected,
				p.connected == cur.connected && p.lastSeen > cur.lastSeen:
				out[a.GetName()] = p
			}
		}
	}
	return out
}

func agentInfo(name string, p presenceView) *controllerv1.AgentInfo {
	st := "disconnected"
	if p.connected {
		st = "connected"
	}
	return &controllerv1.AgentInfo{Name: name, Status: st, Controller: p.controller, LastSeenUnixMillis: p.lastSeen, Version: p.version}
}

// recordFacts stores the facts an agent reported, if they changed.
func (c *Controller) recordFacts(name string, facts *agentv1.Facts) {
	if facts == nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	err := c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := schema.Agents.Get(v, name)
		if !ok || proto.Equal(rec.GetFacts(), facts) {
			return nil, nil
		}
		rec.Facts = facts
		rec.FactsUnixMillis = time.Now().UnixMilli()
		return &raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{schema.Agents.IfVersion(name, ver)}, Mutations: []*raftcmdv1.Mutation{schema.Agents.Put(name, rec)}}, nil
	})
	if err != nil && ctx.Err() == nil {
		c.log.Warn("recording agent facts failed", "agent", name, "err", err)
	}
}
