package dispatcher

import (
	"cmp"
	"context"
	"slices"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// Presence is one agent's presence, merged over every controller's record.
type Presence struct {
	// Connected is set when a controller with a fresh record holds the
	// agent's session.
	Connected bool
	// Controller names the controller whose record this is.
	Controller string
	// LastSeenUnixMillis is when the agent was last heard from.
	LastSeenUnixMillis int64
	// Version is the agent's version.
	Version string
	// Protocol is the agent's protocol version (internal/protocol; 1 for
	// builds older than versioning).
	Protocol int
}

// Grace is how long a controller's presence record stays authoritative
// without a refresh. It covers a controller failover: agents of a dead
// controller show connected until they reconnect elsewhere, or disconnected
// after the grace. The 5 s floor covers an election under load, during
// which no controller can record presence.
func (d *Dispatcher) Grace() time.Duration {
	return max(3*d.cfg.HeartbeatInterval, 3*d.cfg.PresenceInterval, 5*time.Second)
}

// Presence merges every controller's presence record in v, by agent name.
func (d *Dispatcher) Presence(v *raftstore.Snapshot) map[string]Presence {
	out := map[string]Presence{}
	now := time.Now()
	grace := d.Grace()
	for _, pr := range schema.Presence.Values(v, "") {
		fresh := now.Sub(time.UnixMilli(pr.GetWrittenUnixMillis())) <= grace
		for _, a := range pr.GetAgents() {
			p := Presence{Connected: a.GetConnected() && fresh, Controller: pr.GetController(), LastSeenUnixMillis: a.GetLastSeenUnixMillis(), Version: a.GetVersion(), Protocol: protocol.Normalize(a.GetProtocolVersion())}
			cur, ok := out[a.GetName()]
			switch {
			case !ok,
				p.Connected && !cur.Connected,
				p.Connected == cur.Connected && p.LastSeenUnixMillis > cur.LastSeenUnixMillis:
				out[a.GetName()] = p
			}
		}
	}
	return out
}

// presenceLoop records presence every PresenceInterval, and soon after a
// session starts or ends.
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

// presenceRecord is this controller's presence record now.
func (d *Dispatcher) presenceRecord(now time.Time) *controllerv1.PresenceRecord {
	rec := &controllerv1.PresenceRecord{Controller: d.cfg.Name, WrittenUnixMillis: now.UnixMilli()}
	d.mu.Lock()
	for _, s := range d.sessions {
		rec.Agents = append(rec.Agents, &controllerv1.AgentPresence{Name: s.name, Connected: true, LastSeenUnixMillis: s.lastSeen.Load(), Version: s.version, ProtocolVersion: s.protocol})
	}
	for name, g := range d.gone {
		if now.Sub(time.UnixMilli(g.GetLastSeenUnixMillis())) > time.Hour {
			delete(d.gone, name)
			continue
		}
		rec.Agents = append(rec.Agents, g)
	}
	d.mu.Unlock()
	slices.SortFunc(rec.Agents, func(a, b *controllerv1.AgentPresence) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return rec
}

func (d *Dispatcher) writePresence(ctx context.Context) {
	if d.closing.Load() {
		return
	}
	rec := d.presenceRecord(time.Now())
	if !schema.Nodes.Has(d.cluster.View(), d.cfg.Name) {
		return // removed from the cluster
	}
	if _, err := d.cluster.Write(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Presence.Put(d.cfg.Name, rec)}}); err != nil {
		d.log.Warn("recording presence failed", "err", err)
	}
}
