package controller_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/backupfile"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// saveBackup saves a backup through BackupService as kctl does and returns
// its header.
func saveBackup(t *testing.T, cl *ctlclient.Client, path string) *controllerv1.BackupHeader {
	t.Helper()
	var hdr *controllerv1.BackupHeader
	var body bytes.Buffer
	err := cl.CallConn(context.Background(), func(ctx context.Context, cc grpc.ClientConnInterface) error {
		body.Reset()
		st, err := controllerv1.NewBackupServiceClient(cc).SaveSnapshot(ctx, &controllerv1.SaveSnapshotRequest{})
		if err != nil {
			return err
		}
		hdr, err = backupfile.Receive(st.Recv, &body)
		return err
	})
	if err != nil {
		t.Fatalf("SaveSnapshot = %v", err)
	}
	if sum := sha256.Sum256(body.Bytes()); !bytes.Equal(sum[:], hdr.GetSha256()) {
		t.Fatalf("trailer checksum does not match the chunks")
	}
	if err := backupfile.WriteFile(path, hdr, bytes.NewReader(body.Bytes())); err != nil {
		t.Fatal(err)
	}
	return hdr
}

// readBackup verifies a backup file and decodes its state.
func readBackup(t *testing.T, path string) (*controllerv1.BackupHeader, *raftstore.Snapshot) {
	t.Helper()
	b, err := backupfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	v, err := raftstore.ReadState(b.State())
	if err != nil {
		t.Fatal(err)
	}
	return b.Header, v
}

// startNode starts a controller with cfg at fixed addresses.
func startNode(t *testing.T, cfg controller.Config, api, raft string) (*controller.Controller, error) {
	t.Helper()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cfg.APIListener, err = net.Listen("tcp", api); err == nil {
			if cfg.RaftListener, err = net.Listen("tcp", raft); err == nil {
				break
			}
			cfg.APIListener.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // a killed node's port lingers
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := controller.Start(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// runAgent starts an agent and returns a channel with Run's result.
func runAgent(t *testing.T, tc *testCluster, name string, nodes ...int) (*agent.Agent, <-chan error) {
	t.Helper()
	var addrs []string
	for _, i := range nodes {
		addrs = append(addrs, tc.Nodes[i].API)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New(ctx, agent.Config{
		Name: name, DataDir: filepath.Join(t.TempDir(), name), Controllers: addrs,
		Token: tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 1, time.Hour), Runtime: &countingRuntime{}, Version: "test",
		Logger: tc.Logger.With("agent", name), MaxBackoff: 500 * time.Millisecond, DialTimeout: 2 * time.Second,
	})
	if err != nil {
		cancel()
		t.Fatalf("agent.New(%s) = %v", name, err)
	}
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		done <- a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return a, done
}

func waitConnected(t *testing.T, cl *ctlclient.Client, agentName string) {
	t.Helper()
	waitFor(t, 20*time.Second, agentName+" connected", func() error {
		var st string
		err := cl.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			r, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
			for _, a := range r.GetAgents() {
				if a.GetName() == agentName {
					st = a.GetStatus()
				}
			}
			return err
		})
		if err != nil {
			return err
		}
		if st != "connected" {
			return fmt.Errorf("%s is %q", agentName, st)
		}
		return nil
	})
}

// sameTable fails unless table holds the same keys and values in a and b.
func sameTable(t *testing.T, table string, a, b *raftstore.Snapshot) {
	t.Helper()
	ra, rb := a.List(table, ""), b.List(table, "")
	if len(ra) != len(rb) {
		t.Errorf("table %s: %d records restored, backup has %d", table, len(rb), len(ra))
		return
	}
	for i := range ra {
		if ra[i].Key != rb[i].Key || !bytes.Equal(ra[i].Value, rb[i].Value) || ra[i].ModifyIndex != rb[i].ModifyIndex {
			t.Errorf("table %s record %d: restored %q@%d, backup %q@%d", table, i, rb[i].Key, rb[i].ModifyIndex, ra[i].Key, ra[i].ModifyIndex)
		}
	}
}

// The whole cycle: a backup saved while writes run is one consistent
// point in time; restored into a fresh data dir it gives back every table
// entry by entry; at the old address the agents and operators enrolled
// before the backup reconnect without enrolling again, one enrolled after
// it is told clearly to enrol again; new controllers join the restored
// cluster.
func TestBackup_SaveWhileWritingThenRestore(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	admin := tc.AdminClient()
	runAgent(t, tc, "web-1", 0, 1, 2)
	waitConnected(t, admin, "web-1")
	viewer := tc.OperatorClient("viewer-1", pki.OperatorViewer)

	// Writes run while the backup is taken: sequential tokens, each a Raft
	// write acknowledged before the next.
	var (
		acked   sync.Map
		stop    atomic.Bool
		writers sync.WaitGroup
		ackedN  atomic.Int64
	)
	writers.Go(func() {
		for i := 0; !stop.Load(); i++ {
			err := admin.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
				r, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT, Uses: 1})
				if err == nil {
					acked.Store(r.GetInfo().GetId(), i)
					ackedN.Add(1)
				}
				return err
			})
			if err != nil {
				t.Errorf("CreateToken while saving = %v", err)
				return
			}
		}
	})
	waitFor(t, 20*time.Second, "writes running", func() error {
		if ackedN.Load() < 5 {
			return errors.New("fewer than 5 writes")
		}
		return nil
	})
	ackedBefore := map[string]bool{}
	acked.Range(func(k, _ any) bool { ackedBefore[k.(string)] = true; return true })

	path := filepath.Join(t.TempDir(), "cluster.kctl-backup")
	hdr := saveBackup(t, admin, path)
	stop.Store(true)
	writers.Wait()

	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if hdr.GetFormat() != backupfile.Format || hdr.GetProtocolVersion() != uint32(protocol.Current()) || hdr.GetClusterId() != tc.Admin.ClusterID {
		t.Errorf("header = %v", hdr)
	}
	_, backup := readBackup(t, path)
	// Consistent: every write acknowledged before the save started is in it.
	for id := range ackedBefore {
		if !schema.Tokens.Has(backup, id) {
			t.Errorf("token %s, acknowledged before the save, is missing from the backup", id)
		}
	}
	// Point in time: it equals the live state at its index, table by table.
	leader := tc.Nodes[tc.Leader()].C.Store()
	for _, table := range []string{"tokens", "operators", "agents", "cluster", "nodes", "audit"} {
		for _, r := range backup.List(table, "") {
			live, ok := leader.Get(table, r.Key)
			if ok && live.ModifyIndex == r.ModifyIndex && !bytes.Equal(live.Value, r.Value) {
				t.Errorf("%s/%s differs from the live record at the same index", table, r.Key)
			}
			if !ok && table != "tokens" {
				t.Errorf("%s/%s in the backup but not live", table, r.Key)
			}
		}
	}
	// The backup is audited.
	if !auditHas(backup, "cluster snapshot saved") {
		t.Errorf("the backup holds no audit entry of its saving")
	}

	// A damaged file is refused before anything is written.
	bad := filepath.Join(t.TempDir(), "bad")
	raw, _ := os.ReadFile(path)
	raw[len(raw)-10] ^= 0xff
	os.WriteFile(bad, raw, 0o600)

	// An agent enrolled after the backup.
	runAgent2, late := runAgent(t, tc, "web-late", 0, 1, 2)
	_ = runAgent2
	waitConnected(t, admin, "web-late")

	// The cluster is lost.
	tc.KillAll()

	cfg := tc.Config(0)
	// The backup's CA key opens with a copy of an old controller's KEK.
	cfg.KEKFile = filepath.Join(cfg.DataDir, "kek")
	cfg.DataDir, cfg.Init, cfg.Restore = filepath.Join(t.TempDir(), "restored-c1"), true, bad
	if _, err := startNode(t, cfg, tc.Nodes[0].API, tc.Nodes[0].Raft); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("restore from a damaged file = %v, want a checksum error", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft")); err == nil {
		t.Errorf("a refused restore left raft state behind")
	}

	// Restored at c1's old addresses in a fresh data dir.
	cfg.Restore = path
	c1, err := startNode(t, cfg, tc.Nodes[0].API, tc.Nodes[0].Raft)
	if err != nil {
		t.Fatalf("restore = %v", err)
	}
	tc.Nodes[0].C = c1
	restored := c1.Store().View()
	for _, table := range []string{"cluster", "tokens", "agents", "commands", "deploys", "deploy-steps", "deploy-secrets", "locks", "desired"} {
		sameTable(t, table, backup, restored)
	}
	// Audit: every entry, plus the restore's own.
	for _, r := range backup.List("audit", "") {
		got, ok := restored.Get("audit", r.Key)
		if !ok || !bytes.Equal(got.Value, r.Value) {
			t.Errorf("audit %s not restored", r.Key)
		}
	}
	if !auditHas(restored, "cluster restored from a backup") {
		t.Errorf("the restore is not audited")
	}
	// Operators: the same, admin with one more certificate (the new
	// credentials file).
	for _, r := range backup.List("operators", "") {
		if _, ok := restored.Get("operators", r.Key); !ok {
			t.Errorf("operator %s not restored", r.Key)
		}
	}
	// Controllers: only the restored node; the others' certificates revoked.
	if nodes := schema.Nodes.Values(restored, ""); len(nodes) != 1 || nodes[0].GetName() != "c1" {
		t.Errorf("nodes after restore = %v, want c1 only", nodes)
	}
	for _, n := range schema.Nodes.Values(backup, "") {
		for _, s := range n.GetSerials() {
			if !schema.Revoked.Has(restored, s) {
				t.Errorf("old certificate %s of %s not revoked", s, n.GetName())
			}
		}
	}

	// Operators and agents enrolled before the backup reconnect as they are.
	oldAdmin := tc.AdminClient(0)
	waitConnected(t, oldAdmin, "web-1")
	if err := viewer.Call(context.Background(), func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
		return err
	}); err != nil {
		t.Errorf("operator enrolled before the backup: %v", err)
	}
	// New admin credentials were written too.
	if f, err := ctlclient.LoadFile(filepath.Join(cfg.DataDir, "admin.kctl.yaml")); err != nil || f.ClusterID != tc.Admin.ClusterID {
		t.Errorf("restored admin credentials = %v, %v", f, err)
	}
	// The agent enrolled after the backup is told to enrol again.
	select {
	case err := <-late:
		if !errors.Is(err, agent.ErrRevoked) || !strings.Contains(err.Error(), "enrolled after that backup") || !strings.Contains(err.Error(), "enrol it again") {
			t.Errorf("late agent's Run = %v, want a clear 'enrol again' error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent enrolled after the backup kept running")
	}

	// The restored cluster grows again: c2 re-joins with a fresh data dir.
	tok := tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 1, time.Hour)
	cfg2 := tc.Config(1)
	cfg2.DataDir, cfg2.JoinAddrs, cfg2.Token = filepath.Join(t.TempDir(), "rejoined-c2"), []string{tc.Nodes[0].API}, tok
	if _, err := startNode(t, cfg2, tc.Nodes[1].API, tc.Nodes[1].Raft); err != nil {
		t.Fatalf("re-join c2 = %v", err)
	}
	waitFor(t, 20*time.Second, "two voters", func() error {
		srvs, err := c1.Store().Servers()
		if err != nil || len(srvs) != 2 {
			return fmt.Errorf("servers %v, %v", srvs, err)
		}
		return nil
	})
}

func auditHas(v *raftstore.Snapshot, action string) bool {
	for _, r := range schema.Audit.Rows(v) {
		if r.Value.GetAction() == action {
			return true
		}
	}
	return false
}

// Two of three controllers lost for good: --force-new-cluster on the
// survivor starts a one-node cluster from its state; two new controllers
// join it with fresh data dirs; the agent reconnects.
func TestBackup_ForceNewClusterFromSurvivor(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	admin := tc.AdminClient()
	runAgent(t, tc, "web-1", 0, 1, 2)
	waitConnected(t, admin, "web-1")
	before := listTokens(t, tc)
	_ = tc.Token(controllerv1.Role_ROLE_AGENT, "", "", 3, time.Hour)
	want := listTokens(t, tc)
	if len(want) != len(before)+1 {
		t.Fatalf("tokens %v", want)
	}
	lead := tc.Nodes[tc.Leader()].C.Store()
	waitFor(t, 10*time.Second, "c1 caught up", func() error {
		if got, want := tc.Nodes[0].C.Store().AppliedIndex(), lead.AppliedIndex(); got < want {
			return fmt.Errorf("c1 at %d, leader at %d", got, want)
		}
		return nil
	})
	oldNodes := schema.Nodes.Values(tc.Nodes[0].C.Store(), "")
	tc.Kill(1)
	tc.Kill(2)
	tc.Kill(0)

	cfg := tc.Config(0)
	cfg.ForceNewCluster = true
	c1, err := startNode(t, cfg, tc.Nodes[0].API, tc.Nodes[0].Raft)
	if err != nil {
		t.Fatalf("--force-new-cluster = %v", err)
	}
	tc.Nodes[0].C = c1
	if got := listTokens(t, tc, 0); len(got) != len(want) {
		t.Errorf("tokens after recovery = %v, want %v", got, want)
	}
	v := c1.Store().View()
	if nodes := schema.Nodes.Values(v, ""); len(nodes) != 1 || nodes[0].GetName() != "c1" {
		t.Errorf("nodes = %v, want c1 only", nodes)
	}
	for _, n := range oldNodes {
		if n.GetName() == "c1" {
			continue
		}
		for _, s := range n.GetSerials() {
			if !schema.Revoked.Has(v, s) {
				t.Errorf("lost controller %s's certificate not revoked", n.GetName())
			}
		}
	}
	if !auditHas(v, "cluster forced to a new one-node cluster") {
		t.Errorf("not audited")
	}
	// Two new controllers join with fresh data dirs (same names, addresses).
	tok := tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 2, time.Hour)
	for i := 1; i <= 2; i++ {
		cfg := tc.Config(i)
		cfg.DataDir, cfg.JoinAddrs, cfg.Token = filepath.Join(t.TempDir(), tc.Nodes[i].Name), []string{tc.Nodes[0].API}, tok
		c, err := startNode(t, cfg, tc.Nodes[i].API, tc.Nodes[i].Raft)
		if err != nil {
			t.Fatalf("join %s = %v", tc.Nodes[i].Name, err)
		}
		tc.Nodes[i].C = c
	}
	waitFor(t, 20*time.Second, "three voters", func() error {
		srvs, err := c1.Store().Servers()
		if err != nil || len(srvs) != 3 {
			return fmt.Errorf("servers %v, %v", srvs, err)
		}
		return nil
	})
	waitConnected(t, tc.AdminClient(), "web-1")
	// The new cluster survives losing its first node.
	tc.Kill(0)
	tc.Leader()
	if got := listTokens(t, tc, 1, 2); len(got) != len(want) {
		t.Errorf("tokens on the new members = %d, want %d", len(got), len(want))
	}
}

// The cluster refuses a controller too old for its protocol version, and
// one that does not understand the cluster's version, before issuing it a
// certificate.
func TestProtocol_JoinRefusals(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	waitFor(t, 10*time.Second, "the cluster version recorded", func() error {
		if got := tc.Nodes[0].C.ClusterProtocol(); got != protocol.Current() {
			return fmt.Errorf("cluster protocol %d, want %d", got, protocol.Current())
		}
		return nil
	})
	if !tc.Nodes[0].C.Supports(protocol.FeatureVersioned) || tc.Nodes[0].C.Supports(protocol.Current()+1) {
		t.Errorf("Supports gates wrong")
	}
	for _, c := range []struct {
		name            string
		version, oldest uint32
		want            string
	}{
		{"too-old", 1, 0, "older than the cluster's"},
		{"unversioned", 0, 0, "older than the cluster's"},
		{"too-new", 99, 98, "understands protocol versions 98 to 99"},
	} {
		tok := tc.Token(controllerv1.Role_ROLE_CONTROLLER, "", "", 1, time.Hour)
		ptok, _ := pki.ParseToken(tok)
		key, _ := pki.NewKey()
		csr, _ := pki.NewCSR(key, pki.Identity{Role: pki.RoleController, Name: c.name})
		_, err := ctlclient.Join(context.Background(), []string{tc.Nodes[0].API}, ptok, &controllerv1.JoinRequest{
			Token: tok, CsrPem: csr, Name: c.name, ApiAddress: "127.0.0.1:1", RaftAddress: "127.0.0.1:2",
			ProtocolVersion: c.version, ProtocolOldest: c.oldest,
		}, 0)
		if status.Code(errors.Unwrap(err)) != codes.FailedPrecondition && !strings.Contains(fmt.Sprint(err), c.want) {
			t.Errorf("%s: Join = %v, want FailedPrecondition %q", c.name, err, c.want)
		}
		if !strings.Contains(fmt.Sprint(err), c.want) {
			t.Errorf("%s: Join = %v, want %q", c.name, err, c.want)
		}
		if schema.Nodes.Has(tc.Nodes[0].C.Store(), c.name) {
			t.Errorf("%s: refused joiner recorded", c.name)
		}
	}
}

// A committed command of a newer format: every controller stops serving,
// says why in its health (NOT_SERVING) and in every call's error.
func TestProtocol_NewerCommandStopsServing(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	runAgent(t, tc, "web-1", 0, 1, 2)
	waitConnected(t, tc.AdminClient(), "web-1")
	l := tc.Leader()
	_ = raftstore.ProposeRaw(tc.Nodes[l].C.Store(), raftstore.EncodeCommand(&raftcmdv1.Command{
		Format: uint32(protocol.Current() + 1), Mutations: []*raftcmdv1.Mutation{schema.Tokens.Delete("x")},
	}))
	for i := range tc.Nodes {
		cc, err := grpc.NewClient(tc.Nodes[i].API, grpc.WithTransportCredentials(adminTLS(t, tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		waitFor(t, 10*time.Second, tc.Nodes[i].Name+" NOT_SERVING", func() error {
			r, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				return fmt.Errorf("status %v", r.GetStatus())
			}
			return nil
		})
		waitFor(t, 10*time.Second, tc.Nodes[i].Name+" ends its agent sessions", func() error {
			if n := tc.Nodes[i].C.Sessions(); n != 0 {
				return fmt.Errorf("%d sessions", n)
			}
			return nil
		})
		_, err = controllerv1.NewControllerServiceClient(cc).ListTokens(context.Background(), &controllerv1.ListTokensRequest{})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "upgrade this controller") {
			t.Errorf("%s: ListTokens = %v, want Unavailable asking for an upgrade", tc.Nodes[i].Name, err)
		}
	}
}

func adminTLS(t *testing.T, tc *testCluster) credentials.TransportCredentials {
	creds, err := tc.Admin.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(creds.ClientTLS(pki.RoleController))
}
