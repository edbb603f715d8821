package dispatcher

import (
	"cmp"
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// Presence is one agent's presence, merged over every controller's record.
type Presence struct {
	// Connected is set when a live controller holds the agent's session.
	Connected bool
	// Controller names the controller whose record this is.
	Controller string
	// LastSeenUnixMillis is when the agent was last heard from: its last
	// message on this controller's sessions, the start of its session on
	// another controller, or the end of its last session.
	LastSeenUnixMillis int64
	// Version is the agent's version.
	Version string
	// Protocol is the agent's protocol version (internal/protocol; 1 for
	// builds older than versioning).
	Protocol int
}

// Grace is how long a controller that stopped answering probes stays
// authoritative for its sessions. It covers a controller failover: agents
// of a dead controller show connected until they reconnect elsewhere, or
// disconnected after the grace. The 5 s floor covers an election under
// load.
func (d *Dispatcher) Grace() time.Duration {
	return max(3*d.cfg.HeartbeatInterval, 3*d.cfg.PresenceInterval, 5*time.Second)
}

// Presence merges every controller's presence record in v, by agent name,
// with this controller's live sessions.
func (d *Dispatcher) Presence(v *raftstore.Snapshot) map[string]Presence {
	out := map[string]Presence{}
	for _, pr := range schema.Presence.Values(v, "") {
		if pr.GetController() == d.cfg.Name {
			continue // the live sessions below are more current
		}
		alive := d.cluster.Alive(pr.GetController())
		for _, a := range pr.GetAgents() {
			merge(out, a.GetName(), Presence{Connected: a.GetConnected() && alive, Controller: pr.GetController(), LastSeenUnixMillis: a.GetLastSeenUnixMillis(), Version: a.GetVersion(), Protocol: protocol.Normalize(a.GetProtocolVersion())})
		}
	}
	for _, a := range d.presenceRecord(time.Now(), true).GetAgents() {
		merge(out, a.GetName(), Presence{Connected: a.GetConnected(), Controller: d.cfg.Name, LastSeenUnixMillis: a.GetLastSeenUnixMillis(), Version: a.GetVersion(), Protocol: protocol.Normalize(a.GetProtocolVersion())})
	}
	return out
}

// merge keeps, per agent, a connected entry over a disconnected one, and of
// two alike the one seen last.
func merge(out map[string]Presence, name string, p Presence) {
	cur, ok := out[name]
	switch {
	case !ok,
		p.Connected && !cur.Connected,
		p.Connected == cur.Connected && p.LastSeenUnixMillis > cur.LastSeenUnixMillis:
		out[name] = p
	}
}

// presenceLoop records presence soon after a session starts or ends, and
// checks every PresenceInterval whether anything else changed (a gone agent
// expired, a write that failed): it writes only a changed record.
func (d *Dispatcher) presenceLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.PresenceInterval)
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

// presenceRecord is this controller's presence record now. Stored (live
// false), a session's agent is last seen at the session's start, so the
// record changes only when sessions start or end; live, at its last
// message.
func (d *Dispatcher) presenceRecord(now time.Time, live bool) *controllerv1.PresenceRecord {
	rec := &controllerv1.PresenceRecord{Controller: d.cfg.Name}
	d.mu.Lock()
	for _, s := range d.sessions {
		seen := s.since
		if live {
			seen = s.lastSeen.Load()
		}
		rec.Agents = append(rec.Agents, &controllerv1.AgentPresence{Name: s.name, Connected: true, LastSeenUnixMillis: seen, Version: s.version, ProtocolVersion: s.protocol})
	}
	for name, g := range d.gone {
		if now.Sub(time.UnixMilli(g.GetLastSeenUnixMillis())) > GoneRetention {
			delete(d.gone, name)
			continue
		}
		rec.Agents = append(rec.Agents, g)
	}
	d.mu.Unlock()
	slices.SortFunc(rec.Agents, func(a, b *controllerv1.AgentPresence) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return rec
}

// writePresence writes this controller's record if it differs from the
// stored one (written_unix_millis aside).
func (d *Dispatcher) writePresence(ctx context.Context) {
	if d.closing.Load() {
		return
	}
	now := time.Now()
	rec := d.presenceRecord(now, false)
	v := d.cluster.View()
	if !schema.Nodes.Has(v, d.cfg.Name) {
		return // removed from the cluster (or not yet joined)
	}
	if old, _, ok := schema.Presence.Get(v, d.cfg.Name); ok {
		old.WrittenUnixMillis = 0
		if proto.Equal(old, rec) {
			return
		}
	}
	rec.WrittenUnixMillis = now.UnixMilli()
	if _, err := d.cluster.Write(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Presence.Put(d.cfg.Name, rec)}}); err != nil {
		d.log.Warn("recording presence failed", "err", err)
	}
}
