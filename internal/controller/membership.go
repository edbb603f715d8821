package controller

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// Membership, as each controller sees itself:
//
//   - A node is current once it has applied its own node record listing
//     its certificate: it then holds every entry up to its join. The index
//     at which it first did is kept in memberFile, so a restart that
//     replays the log from an older snapshot knows where "current" begins.
//   - A node concludes it was removed only when it is current and its
//     record is gone or its certificate revoked. Before that, a missing
//     record means "not caught up yet": a joiner applies the CA record long
//     before its own.
//   - A joiner is added as a nonvoter and promoted to voter by the leader
//     once it reports it is current (AddController), so a slow joiner never
//     costs the quorum.

// memberFile, under the data dir, holds the applied index at which this
// node first saw its own node record.
const memberFile = "member"

// promoteLag is how many entries a nonvoter may trail the leader's applied
// index when it asks to vote.
const promoteLag = 1024

// loadMember reads memberFile (0 when absent).
func (c *Controller) loadMember() {
	b, err := os.ReadFile(c.path(memberFile))
	if err != nil {
		return
	}
	if idx, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
		c.seenIndex.Store(idx)
	}
}

// observeSelf records the index at which this node first applies its own
// node record listing its certificate.
func (c *Controller) observeSelf() {
	if c.seenIndex.Load() != 0 {
		return
	}
	v := c.store.View()
	rec, _, ok := schema.Nodes.Get(v, c.cfg.Name)
	if !ok || !slices.Contains(rec.GetSerials(), pki.Serial(c.creds.Leaf())) {
		return
	}
	idx := max(v.Index(), 1)
	if err := atomicfile.WriteFile(c.path(memberFile), []byte(strconv.FormatUint(idx, 10)+"\n"), 0o600); err != nil {
		c.log.Warn("recording membership failed", "err", err)
	}
	c.seenIndex.Store(idx)
	c.log.Info("caught up to this controller's own join", "index", idx)
}

// current reports whether this node holds the state up to its own join.
func (c *Controller) current() bool {
	idx := c.seenIndex.Load()
	return idx != 0 && c.store.AppliedIndex() >= idx
}

// removedFromCluster reports whether this controller was removed: it is
// current, and its node record is gone or its certificate revoked.
func (c *Controller) removedFromCluster() bool {
	if !c.current() {
		return false
	}
	v := c.store.View()
	if schema.Revoked.Has(v, pki.Serial(c.creds.Leaf())) {
		return true
	}
	return !schema.Nodes.Has(v, c.cfg.Name)
}

// verifyRaftPeer authorizes a Raft peer's certificate: a controller of
// this cluster, not revoked, and not issued before its name was removed
// (RemovedNodes, kept when a replacement joins under the name: the old
// node's certificates stay refused, even those whose serials its record
// no longer listed). A name this node does not know yet is accepted:
// it may have joined after the state this node has applied (the leader
// itself, while this node catches up); only the leader issues certificates.
func (c *Controller) verifyRaftPeer(st *raftstore.Store, leaf *x509.Certificate) error {
	id, err := pki.IdentityFromCert(leaf)
	if err != nil {
		return err
	}
	if id.Role != pki.RoleController || id.ClusterID != c.clusterID {
		return fmt.Errorf("controller: raft peer %s is not a controller of this cluster", id)
	}
	if st == nil {
		return nil
	}
	v := st.View()
	if schema.Revoked.Has(v, pki.Serial(leaf)) {
		return fmt.Errorf("controller: raft peer %s was removed from the cluster", id)
	}
	if rm, _, ok := schema.RemovedNodes.Get(v, id.Name); ok && pki.IssuedAt(leaf).Before(time.UnixMilli(rm.GetRemovedUnixMillis())) {
		return fmt.Errorf("controller: raft peer %s was removed from the cluster (kctl cluster remove)", id)
	}
	return nil
}

// membershipLoop, on every controller, follows the applied state: it notes
// when this node becomes current, keeps the health status in step, closes
// Raft connections when a controller is removed (so a removed peer must
// pass verifyRaftPeer again) and, while this node is a nonvoter that asked
// to vote, asks the leader to promote it.
func (c *Controller) membershipLoop(ctx context.Context) {
	ch, stop := c.store.Watch()
	defer stop()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var gone []string
	for {
		c.observeSelf()
		c.updateServing()
		// Once a removed controller has left the configuration (it had
		// the chance to learn of its removal), drop every Raft connection
		// so its certificate is checked again and refused.
		if g := c.removedAndGone(); !slices.Equal(g, gone) {
			if len(g) > len(gone) || slices.ContainsFunc(g, func(n string) bool { return !slices.Contains(gone, n) }) {
				c.store.ReverifyPeers()
			}
			gone = g
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-t.C:
			c.promoteSelf(ctx)
		}
	}
}

// removedAndGone lists the removed controllers (RemovedNodes) that are no
// longer in the Raft configuration.
func (c *Controller) removedAndGone() []string {
	servers, err := c.store.Servers()
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range schema.RemovedNodes.Raw(c.store.View(), "") {
		if !slices.ContainsFunc(servers, func(s raftstore.Server) bool { return s.ID == r.Key }) {
			out = append(out, r.Key)
		}
	}
	return out
}

// isVoter reports whether the local Raft configuration lists this node as
// a voter.
func (c *Controller) isVoter() bool {
	servers, err := c.store.Servers()
	return err == nil && slices.ContainsFunc(servers, func(s raftstore.Server) bool { return s.ID == c.cfg.Name && s.Voter })
}

// promoteSelf asks the leader to promote this node when it is current, its
// record asks to vote (it joined) and it does not vote yet: a controller
// restarted while it was still a nonvoter finishes its join.
func (c *Controller) promoteSelf(ctx context.Context) {
	if !c.current() || c.isVoter() || c.removedFromCluster() {
		return
	}
	rec, _, ok := schema.Nodes.Get(c.store.View(), c.cfg.Name)
	if !ok || !rec.GetVoter() {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.askToVote(cctx, nil); err != nil {
		c.log.Debug("asking to vote failed; will retry", "err", err)
	}
}

// askToVote calls AddController once through cl (or the known controllers),
// reporting this node's progress.
func (c *Controller) askToVote(ctx context.Context, cl *ctlclient.Client) (bool, error) {
	if cl == nil {
		cl = ctlclient.NewClient(c.creds, c.controllerAddrs(), 2*time.Second)
	}
	var voter bool
	err := cl.Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		r, err := cc.AddController(ctx, &controllerv1.AddControllerRequest{AppliedIndex: c.store.AppliedIndex(), Current: c.current()})
		voter = r.GetVoter()
		return err
	})
	return voter, err
}

// becomeVoter, on a joining controller, asks the cluster to add it (as a
// nonvoter) and then to promote it, until the local configuration lists it
// as a voter and it is current. Catching up on a busy cluster may take a
// while: ctx bounds it.
func (c *Controller) becomeVoter(ctx context.Context) error {
	cl := ctlclient.NewClient(c.creds, append(slices.Clone(c.cfg.JoinAddrs), c.joinPeers...), 5*time.Second)
	var err error
	for {
		c.observeSelf()
		if c.current() && c.isVoter() {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = c.askToVote(cctx, cl)
		cancel()
		if err != nil && status.Code(err) == codes.PermissionDenied {
			return fmt.Errorf("%w: the cluster refused this controller: %w", ErrJoin, err)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("applied index %d, current %v, voter %v", c.store.AppliedIndex(), c.current(), c.isVoter())
			}
			return fmt.Errorf("%w: this controller did not catch up and become a voter in time: %w", ErrJoin, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// reconcileOnce makes the Raft configuration match the nodes table: a
// node that asked to vote (AddController) and is missing is added as a
// nonvoter (AddController promotes it); servers without a node record are
// removed. Leader only.
func (c *Controller) reconcileOnce(ctx context.Context) {
	servers, err := c.store.Servers()
	if err != nil {
		return
	}
	v := c.store.View()
	want := map[string]*controllerv1.NodeRecord{}
	for _, n := range schema.Nodes.Values(v, "") {
		if n.GetVoter() {
			want[n.GetName()] = n
		}
	}
	if len(want) == 0 {
		return // state not written yet
	}
	for name, n := range want {
		if slices.ContainsFunc(servers, func(s raftstore.Server) bool { return s.ID == name && s.Address == n.GetRaftAddress() }) {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.store.AddNonvoter(actx, name, n.GetRaftAddress())
		cancel()
		if err != nil {
			c.log.Warn("adding nonvoter failed; will retry", "node", name, "err", err)
		} else {
			c.log.Info("added nonvoter", "node", name, "raft", n.GetRaftAddress())
		}
	}
	for _, s := range servers {
		if ok := schema.Nodes.Has(v, s.ID); ok {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.store.RemoveServer(actx, s.ID)
		cancel()
		if err != nil {
			c.log.Warn("removing server failed; will retry", "node", s.ID, "err", err)
		} else {
			c.log.Info("removed server", "node", s.ID)
		}
	}
}

// addController is AddController's work: on a follower it forwards the
// call to the leader; the leader records that the caller asked to vote,
// adds it as a nonvoter, and promotes it once it reports it is current and
// close enough to the leader's applied index.
func (c *Controller) addController(ctx context.Context, id pki.Identity, req *controllerv1.AddControllerRequest) (bool, error) {
	if !c.store.IsLeader() {
		leader, _ := c.store.Leader()
		if leader == "" || leader == c.cfg.Name {
			return false, status.Error(codes.Unavailable, "controller: no leader yet; retry")
		}
		cc, err := c.peers.conn(leader)
		if err != nil {
			return false, err
		}
		r, err := controllerv1.NewControllerServiceClient(cc).AddController(pki.WithIdentity(ctx, id), req)
		return r.GetVoter(), err
	}
	name := id.Name
	err := c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := schema.Nodes.Get(v, name)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "controller: %s has not joined", name)
		}
		if rec.GetVoter() {
			return nil, nil
		}
		rec.Voter = true
		return &raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{schema.Nodes.IfVersion(name, ver)}, Mutations: []*raftcmdv1.Mutation{schema.Nodes.Put(name, rec)}}, nil
	})
	if err != nil {
		return false, err
	}
	c.poke()
	if err := c.waitMembership(ctx, name, true); err != nil {
		return false, err
	}
	rec, _, ok := schema.Nodes.Get(c.store.View(), name)
	if !ok {
		return false, status.Errorf(codes.NotFound, "controller: %s has not joined", name)
	}
	servers, err := c.store.Servers()
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(servers, func(s raftstore.Server) bool { return s.ID == name && s.Voter }) {
		return true, nil
	}
	if !req.GetCurrent() || c.store.AppliedIndex() > req.GetAppliedIndex()+promoteLag {
		return false, nil
	}
	if err := c.store.AddVoter(ctx, name, rec.GetRaftAddress()); err != nil {
		return false, err
	}
	c.log.Info("promoted to voter", "node", name, "applied", req.GetAppliedIndex())
	return true, nil
}
