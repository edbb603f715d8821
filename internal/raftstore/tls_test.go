package raftstore_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"google.golang.org/protobuf/proto"
)

func TestTLS_ClusterReplicates(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3, raftstore.WithTLS())
	res := c.Apply(t, cmd(put("apps", "web", "v1")))
	if !res.GetApplied() {
		t.Fatalf("Apply = %v, want applied", res)
	}
	c.EnsureSame(t)
	for i := range 3 {
		mustGet(t, c.Store(i), "apps", "web", "v1")
	}
	// Followers name the leader by its TLS advertise address.
	leader := c.WaitForLeader(t)
	_, addr := leader.Leader()
	for _, i := range c.Followers() {
		var nl *raftstore.NotLeaderError
		if _, err := c.Store(i).Apply(ctxT(t), cmd(put("a", "b", "c"))); !errors.As(err, &nl) || nl.LeaderAddr != addr {
			t.Errorf("follower Apply = %v, want NotLeaderError naming %s", err, addr)
		}
	}
	// Kill the leader: the TLS cluster fails over and keeps the write.
	c.Kill(c.Leader())
	mustGet(t, c.WaitForLeader(t), "apps", "web", "v1")
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestTLS_OutsiderCannotJoin: a node whose certificate is from another CA,
// or from the right CA with the wrong role, never receives the cluster's
// data even when the leader is told to add it.
func TestTLS_OutsiderCannotJoin(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3, raftstore.WithTLS())
	c.Apply(t, cmd(put("secrets", "k", "v")))
	other := raftstore.NewTestCA(t)
	for _, tc := range []struct {
		name string
		ca   *raftstore.TestCA
		role string
	}{
		{"certificate from another CA", other, "controller"},
		{"agent certificate from the cluster CA", c.CA, "agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cl := &countingListener{Listener: ln}
			cert := tc.ca.Issue(t, "intruder", tc.role, 0)
			in, err := raftstore.Open(raftstore.Config{
				NodeID: "intruder", DataDir: t.TempDir(), Listener: cl,
				ServerTLS: tc.ca.ServerTLS(cert), ClientTLS: tc.ca.ClientTLS(cert),
				HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { in.Close() })

			leader := c.WaitForLeader(t)
			if err := leader.AddVoter(ctxT(t), "intruder", ln.Addr().String()); err != nil {
				t.Fatalf("AddVoter(intruder): %v", err)
			}
			t.Cleanup(func() { _ = c.Store(c.Leader()).RemoveServer(ctxT(t), "intruder") })
			// The leader keeps trying to replicate to it: wait for several
			// attempts, then check nothing got through.
			c.WaitFor(t, "the leader to retry the intruder", func() error {
				if n := cl.n.Load(); n < 3 {
					return errors.New("fewer than 3 connection attempts")
				}
				return nil
			})
			if in.HasState() || in.AppliedIndex() != 0 {
				t.Fatalf("intruder has state (applied index %d)", in.AppliedIndex())
			}
			if _, ok := in.Get("secrets", "k"); ok {
				t.Fatalf("intruder received the cluster's data")
			}
		})
	}
}

// TestTLS_OutsiderCannotInjectEntries sends raft AppendEntries straight to a
// follower's raft port with a term far ahead: refused at the TLS layer unless
// the sender holds a controller certificate of the cluster CA.
func TestTLS_OutsiderCannotInjectEntries(t *testing.T) {
	c := raftstore.NewTestCluster(t, 3, raftstore.WithTLS())
	c.Apply(t, cmd(put("t", "k", "original")))
	c.EnsureSame(t)
	victim := c.Followers()[0]
	term := c.Store(victim).Stats()["term"]
	other := raftstore.NewTestCA(t)

	body, err := proto.Marshal(&raftcmdv1.Command{UnixNanos: 1, Mutations: []*raftcmdv1.Mutation{put("t", "k", "injected")}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(t *testing.T, server, client *tls.Config, term uint64) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr := raft.NewNetworkTransport(raftstore.NewTLSStreamLayer(ln, nil, server, client, nil), 1, 2*time.Second, io.Discard)
		defer tr.Close()
		last := c.Store(victim).AppliedIndex()
		req := &raft.AppendEntriesRequest{
			RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(ln.Addr().String())},
			Term:              term,
			PrevLogEntry:      last,
			PrevLogTerm:       0,
			Entries:           []*raft.Log{{Index: last + 1, Term: term, Type: raft.LogCommand, Data: append([]byte{1}, body...)}},
			LeaderCommitIndex: last + 1,
		}
		var resp raft.AppendEntriesResponse
		return tr.AppendEntries(raft.ServerID(c.ID(victim)), raft.ServerAddress(c.Addr(victim)), req, &resp)
	}

	// Control: the same RPC with a genuine controller certificate (and a
	// stale term, so it is harmlessly refused by raft) gets a raft answer.
	good := c.CA.Issue(t, "node-x", "controller", 0)
	if err := send(t, c.CA.ServerTLS(good), c.CA.ClientTLS(good), 0); err != nil {
		t.Fatalf("control AppendEntries with a controller certificate: %v, want a raft response", err)
	}

	noCert := &tls.Config{RootCAs: c.CA.Pool, MinVersion: tls.VersionTLS13}
	foreign := other.Issue(t, "intruder", "controller", 0)
	agent := c.CA.Issue(t, "intruder", "agent", 0)
	expired := c.CA.Issue(t, "intruder", "controller", time.Second)
	c.WaitFor(t, "the short certificate to expire", func() error {
		if time.Now().Before(expired.Leaf.NotAfter) {
			return errors.New("not yet")
		}
		return nil
	})
	for _, tc := range []struct {
		name           string
		server, client *tls.Config
	}{
		{"no client certificate", c.CA.ServerTLS(good), noCert},
		{"certificate from another CA", other.ServerTLS(foreign), foreignClient(other, foreign, c.CA)},
		{"agent certificate", c.CA.ServerTLS(agent), c.CA.ClientTLS(agent)},
		{"expired controller certificate", c.CA.ServerTLS(expired), c.CA.ClientTLS(expired)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := send(t, tc.server, tc.client, 1000)
			if err == nil {
				t.Fatalf("AppendEntries accepted")
			}
			t.Logf("refused: %v", err)
		})
	}
	c.EnsureSame(t)
	// Elections may legitimately raise the term; the injected term may not.
	if got, _ := strconv.ParseUint(c.Store(victim).Stats()["term"], 10, 64); got >= 1000 {
		t.Errorf("victim term = %d after injection attempts (was %s): the injected term got through", got, term)
	}
	for i := range 3 {
		mustGet(t, c.Store(i), "t", "k", "original")
	}
}

// foreignClient presents a foreign certificate but trusts the cluster CA, so
// the handshake reaches the point where the cluster must refuse it.
func foreignClient(ca *raftstore.TestCA, cert tls.Certificate, cluster *raftstore.TestCA) *tls.Config {
	cfg := ca.ClientTLS(cert)
	cfg.RootCAs = cluster.Pool
	return cfg
}

// TestTLS_RevokedPeerCutOff: after a controller's certificate is revoked and
// the others call ReverifyPeers, it gets no further entries.
func TestTLS_RevokedPeerCutOff(t *testing.T) {
	var revoked sync.Map // CN -> true
	var refusals atomic.Int64
	verify := func(cert *x509.Certificate) error {
		if err := raftstore.RequireRole("controller")(cert); err != nil {
			return err
		}
		if _, ok := revoked.Load(cert.Subject.CommonName); ok {
			refusals.Add(1)
			return fmt.Errorf("certificate of %s is revoked", cert.Subject.CommonName)
		}
		return nil
	}
	c := raftstore.NewTestCluster(t, 3, raftstore.WithTLS(), raftstore.WithConfig(func(_ int, cfg *raftstore.Config) {
		cfg.VerifyPeer = verify
	}))
	c.Apply(t, cmd(put("t", "a", "1")))
	c.EnsureSame(t)
	victim := c.Followers()[0]
	revoked.Store(c.ID(victim), true)
	for i := range 3 {
		if i != victim {
			c.Store(i).ReverifyPeers()
		}
	}
	res := c.Apply(t, cmd(put("t", "b", "2")))
	c.WaitFor(t, "the cluster to refuse the revoked peer repeatedly", func() error {
		if n := refusals.Load(); n < 3 {
			return fmt.Errorf("%d refusals", n)
		}
		return nil
	})
	for i := range 3 {
		if i == victim {
			continue
		}
		if err := c.Store(i).WaitForIndex(ctxT(t), res.GetIndex()); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := c.Store(victim).Get("t", "b"); ok {
		t.Fatalf("revoked controller %s received a write made after its revocation", c.ID(victim))
	}
}
