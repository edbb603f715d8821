package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/version"
)

// Health: a controller serves (gRPC health SERVING) when it is current
// (membership.go), was not removed, and can write its data directory.
// diskLoop writes a probe file every diskProbeInterval; a failed write
// marks the node NOT_SERVING and makes a leader hand leadership to another
// voter. ClusterStatus gathers every node's NodeStatus.

// diskProbeFile, under the data dir, is rewritten by diskLoop.
const diskProbeFile = ".probe"

// diskProbeInterval is how often diskLoop writes the probe.
const diskProbeInterval = 2 * time.Second

// lagLimit is how many entries a node may trail the leader before
// ClusterStatus calls it lagging; contactLimit how long a follower may go
// without hearing from the leader.
const (
	lagLimit     = promoteLag
	contactLimit = 10 * time.Second
)

// serving reports whether this node should serve.
func (c *Controller) serving() bool {
	return c.current() && !c.removedFromCluster() && c.diskErr.Load() == nil && c.store.Halted() == nil
}

// updateServing sets the health status from serving.
func (c *Controller) updateServing() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if c.serving() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	c.health.SetServingStatus("", st)
}

// diskLoop checks that the data directory takes writes.
func (c *Controller) diskLoop(ctx context.Context) {
	t := time.NewTicker(diskProbeInterval)
	defer t.Stop()
	for {
		c.probeDisk()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) probeDisk() {
	err := atomicfile.WriteFile(c.path(diskProbeFile), []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o600)
	if err == nil {
		if c.diskErr.Swap(nil) != nil {
			c.log.Info("the data directory takes writes again")
			c.updateServing()
		}
		return
	}
	msg := err.Error()
	if c.diskErr.Swap(&msg) == nil {
		c.log.Error("cannot write the data directory: not serving", "dir", c.cfg.DataDir, "err", err)
		c.updateServing()
	}
	if c.store.IsLeader() {
		c.log.Warn("stepping down: this leader cannot write its data directory")
		if err := c.store.LeadershipTransfer(); err != nil {
			c.log.Warn("leadership transfer failed", "err", err)
		}
	}
}

// diskFree reports the bytes available in the data directory.
func (c *Controller) diskFree() uint64 {
	var st unix.Statfs_t
	if err := unix.Statfs(c.cfg.DataDir, &st); err != nil {
		return 0
	}
	return st.Bavail * uint64(st.Bsize)
}

// nodeStatus is this node's own health.
func (c *Controller) nodeStatus() *controllerv1.NodeStatusResponse {
	st := c.store.Status()
	r := &controllerv1.NodeStatusResponse{
		Name: c.cfg.Name, State: st.State, Term: st.Term, AppliedIndex: st.AppliedIndex,
		LastLogIndex: st.LastLogIndex, CommitIndex: st.CommitIndex, SnapshotIndex: st.SnapshotIndex,
		DiskFreeBytes: c.diskFree(), Serving: c.serving(), Current: c.current(), Version: version.Version,
		LastContactMillis: st.LastContact.Milliseconds(),
	}
	if e := c.diskErr.Load(); e != nil {
		r.DiskError = *e
	}
	return r
}

// NodeStatus reports this controller's own health. It does not fail.
func (s *internalAPI) NodeStatus(ctx context.Context, _ *controllerv1.NodeStatusRequest) (*controllerv1.NodeStatusResponse, error) {
	return s.c.nodeStatus(), nil
}

// remoteStatus asks the controller at addr for its NodeStatus.
func (c *Controller) remoteStatus(ctx context.Context, addr string) (*controllerv1.NodeStatusResponse, error) {
	cc, err := c.peers.connAddr(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return controllerv1.NewInternalServiceClient(cc).NodeStatus(ctx, &controllerv1.NodeStatusRequest{})
}

// ClusterStatus reports every controller of the Raft configuration: its
// state, term, last contact with the leader, applied index and lag,
// snapshot index, free disk and version, and the problems that make the
// cluster unhealthy. Errors: Unavailable (Raft is closed).
func (s *api) ClusterStatus(ctx context.Context, _ *controllerv1.ClusterStatusRequest) (*controllerv1.ClusterStatusResponse, error) {
	c := s.c
	servers, err := c.store.Servers()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "controller: %v", err)
	}
	leader, _ := c.store.Leader()
	resp := &controllerv1.ClusterStatusResponse{Leader: leader, ClusterId: c.clusterID}
	v := c.store.View()
	stats := make([]*controllerv1.NodeStatusResponse, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, sv := range servers {
		rec, _, _ := schema.Nodes.Get(v, sv.ID)
		n := &controllerv1.ControllerNode{Name: sv.ID, Address: rec.GetApiAddress(), RaftAddress: sv.Address, Voter: sv.Voter}
		resp.Nodes = append(resp.Nodes, n)
		switch {
		case sv.ID == c.cfg.Name:
			stats[i] = c.nodeStatus()
		case n.Address == "":
			errs[i] = fmt.Errorf("no known API address")
		default:
			wg.Go(func() { stats[i], errs[i] = c.remoteStatus(ctx, n.Address) })
		}
	}
	wg.Wait()
	var leaderApplied uint64
	for i, sv := range servers {
		if sv.ID == leader && stats[i] != nil {
			leaderApplied = stats[i].GetAppliedIndex()
		}
	}
	voters, healthyVoters := 0, 0
	for i, n := range resp.Nodes {
		if n.GetVoter() {
			voters++
		}
		st := stats[i]
		if st == nil && status.Code(errs[i]) == codes.Unimplemented {
			// A controller of an older build (a rolling upgrade): it
			// answers, but reports nothing about itself; Raft knows its role.
			n.State, n.Version = "follower", "older build"
			if n.Name == leader {
				n.State = "leader"
			}
			if n.GetVoter() {
				healthyVoters++
			}
			continue
		}
		if st == nil {
			n.State = "unreachable"
			n.Problem = "unreachable"
			if errs[i] != nil {
				n.Problem = "unreachable: " + shortErr(errs[i])
			}
			continue
		}
		n.State, n.Term, n.AppliedIndex, n.SnapshotIndex = st.GetState(), st.GetTerm(), st.GetAppliedIndex(), st.GetSnapshotIndex()
		n.LastContactMillis, n.DiskFreeBytes, n.Version, n.Serving = st.GetLastContactMillis(), st.GetDiskFreeBytes(), st.GetVersion(), st.GetServing()
		if leaderApplied > n.AppliedIndex {
			n.Lag = leaderApplied - n.AppliedIndex
		}
		var problems []string
		switch {
		case st.GetDiskError() != "":
			problems = append(problems, "cannot write its data directory: "+st.GetDiskError())
		case !st.GetCurrent():
			problems = append(problems, "catching up with the cluster")
		case !st.GetServing():
			problems = append(problems, "not serving")
		}
		if n.Lag > lagLimit {
			problems = append(problems, fmt.Sprintf("lagging %d entries behind the leader", n.Lag))
		}
		if n.State != "leader" && (n.LastContactMillis < 0 || time.Duration(n.LastContactMillis)*time.Millisecond > contactLimit) {
			problems = append(problems, "no recent contact with a leader")
		}
		n.Problem = strings.Join(problems, "; ")
		if n.GetVoter() && n.Problem == "" {
			healthyVoters++
		}
	}
	sort.Slice(resp.Nodes, func(i, j int) bool { return resp.Nodes[i].GetName() < resp.Nodes[j].GetName() })
	if leader == "" {
		resp.Problems = append(resp.Problems, "no leader")
	}
	if voters > 0 && healthyVoters <= voters/2 {
		resp.Problems = append(resp.Problems, fmt.Sprintf("quorum at risk: %d of %d voters healthy, %d needed", healthyVoters, voters, voters/2+1))
	}
	for _, n := range resp.Nodes {
		if n.Problem != "" {
			resp.Problems = append(resp.Problems, n.Name+": "+n.Problem)
		}
	}
	return resp, nil
}

// shortErr is an error's message without gRPC's prefix.
func shortErr(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// gated methods are refused with Unavailable while a joining controller
// catches up: its state is behind, so the caller should try another
// controller. Raft-internal calls, joining and health checks pass.
func (c *Controller) gated(method string) bool {
	if !c.catchingUp.Load() {
		return false
	}
	if c.current() {
		c.catchingUp.Store(false)
		return false
	}
	return !slices.ContainsFunc([]string{"/kctl.controller.v1.InternalService/", "/grpc.health.v1.Health/",
		"/kctl.controller.v1.ControllerService/AddController", "/kctl.controller.v1.ControllerService/ClusterStatus"},
		func(p string) bool { return strings.HasPrefix(method, p) })
}

var errCatchingUp = status.Error(codes.Unavailable, "controller: this controller is still catching up with the cluster; try another one")

func (c *Controller) gateUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if c.gated(info.FullMethod) {
		return nil, errCatchingUp
	}
	return handler(ctx, req)
}

func (c *Controller) gateStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if c.gated(info.FullMethod) {
		return errCatchingUp
	}
	return handler(srv, ss)
}

// Serving reports whether this controller serves: it has caught up, was
// not removed and can write its data directory.
func (c *Controller) Serving() bool { return c.serving() }
