package controller_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/sealbox"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// No file of any controller's data dir (raft.db with its log, snapshots,
// everything else) holds the cluster CA's private key in any encoding
// (PEM, DER, base64 of DER, the raw scalar in binary or hex), nor a
// secret sent sealed to an agent, while the commands carrying them are
// still in Raft; each controller has the same key-encryption key, 0600,
// and opens the CA with it.
func TestAtRest_NoFileHoldsTheCAKeyOrASecret(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	rt := &countingRuntime{}
	tc.startAgent("web-1", rt, 0)
	ops, canaries := canaryOps()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	agents, err := admin.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
	if err != nil || len(agents.GetAgents()) != 1 {
		t.Fatalf("ListAgents = %v, %v", agents, err)
	}
	pub := agents.GetAgents()[0].GetEncryptionKey()
	for kind, op := range ops {
		op = proto.Clone(op).(*agentv1.Operation)
		if err := sealbox.SealOperation(op, "web-1", pub); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1", Operation: op, Wait: true}); err != nil {
			t.Fatalf("SendCommand(%s) = %v", kind, err)
		}
	}
	for _, n := range tc.Nodes {
		if err := n.C.Store().Snapshot(); err != nil {
			t.Fatalf("snapshot on %s: %v", n.Name, err)
		}
	}

	ca := clusterCA(t, tc)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caPub := ca.Cert.PublicKey.(*ecdsa.PublicKey)
	scalar := key.D.FillBytes(make([]byte, 32))
	raw := map[string][]byte{"the CA key's scalar": scalar, "the CA key's scalar in hex": []byte(hex.EncodeToString(scalar))}
	for _, c := range canaries {
		raw["canary "+c] = []byte(c)
	}
	var kek []byte
	for _, n := range tc.Nodes {
		hits, files, err := testenv.FindPrivateKeyInDir(caPub, n.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			t.Errorf("%s's data dir holds the CA key: %s", n.Name, h)
		}
		sawRaft, sawSnapshot := false, false
		err = filepath.WalkDir(n.Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(n.Dir, path)
			sawRaft = sawRaft || filepath.Base(rel) == "raft.db"
			sawSnapshot = sawSnapshot || filepath.Base(rel) == "state.bin"
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for what, v := range raw {
				if bytes.Contains(b, v) {
					t.Errorf("%s's %s holds %s", n.Name, rel, what)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files < 3 || !sawRaft || !sawSnapshot {
			t.Fatalf("%s: read %d files (raft.db: %v, a snapshot: %v): nothing to check", n.Name, files, sawRaft, sawSnapshot)
		}
		st, err := os.Stat(filepath.Join(n.Dir, "kek"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s's kek file: %v, %v; want 0600", n.Name, st, err)
		}
		b, _ := os.ReadFile(filepath.Join(n.Dir, "kek"))
		if kek != nil && !bytes.Equal(b, kek) {
			t.Errorf("%s's kek differs from the first controller's", n.Name)
		}
		kek = b
		if _, err := n.C.CA(); err != nil {
			t.Errorf("%s cannot open the CA: %v", n.Name, err)
		}
	}
}

// An agent without an encryption key (enrolled before agents had one)
// refuses an operation carrying sealed secrets with a result that says to
// re-enrol it, and its runtime never sees the operation.
func TestSecrets_AgentWithoutKeyRefusesThem(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	dir := filepath.Join(t.TempDir(), "web-1")
	rt := &countingRuntime{}
	_, stop := tc.startAgentWith("web-1", rt, func(c *agent.Config) { c.DataDir = dir }, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	agents, err := admin.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
	if err != nil || len(agents.GetAgents()) != 1 {
		t.Fatalf("ListAgents = %v, %v", agents, err)
	}
	stop()
	if err := os.Remove(filepath.Join(dir, sealbox.KeyFile)); err != nil {
		t.Fatal(err)
	}
	rt2 := &countingRuntime{}
	tc.startAgentWith("web-1", rt2, func(c *agent.Config) { c.DataDir = dir }, 0)
	ops, _ := canaryOps()
	op := proto.Clone(ops["BootApp"]).(*agentv1.Operation)
	if err := sealbox.SealOperation(op, "web-1", agents.GetAgents()[0].GetEncryptionKey()); err != nil {
		t.Fatal(err)
	}
	resp, err := admin.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1", Operation: op, Wait: true})
	if err != nil {
		t.Fatalf("SendCommand = %v", err)
	}
	res := resp.GetCommand().GetResult()
	if res.GetOk() || !strings.Contains(res.GetError(), "re-enrol") {
		t.Errorf("result = %v, want a refusal saying to re-enrol the agent", res)
	}
	rt2.mu.Lock()
	defer rt2.mu.Unlock()
	for _, o := range rt2.ops {
		if o.GetBootApp() != nil {
			t.Errorf("the runtime received the operation: %v", o)
		}
	}
}

// A controller started without its key-encryption key (kept on storage
// mounted later, or lost) serves but cannot use the CA, says where the KEK
// belongs, and can as soon as the file is there, without a restart.
func TestAtRest_ControllerWithoutKEKCannotSignUntilItIsThere(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	kekPath := filepath.Join(tc.Nodes[0].Dir, "kek")
	kek, err := os.ReadFile(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	tc.Kill(0)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(kekPath))
	tc.Restart(0)
	waitFor(t, 30*time.Second, "the restarted controller to replay the cluster state", func() error {
		_, err := tc.Nodes[0].C.CA()
		if err != nil && strings.Contains(err.Error(), "not yet received") {
			return err
		}
		return nil
	})
	if _, err := tc.Nodes[0].C.CA(); err == nil || !strings.Contains(err.Error(), kekPath) {
		t.Fatalf("CA() without the KEK = %v, want an error naming %s", err, kekPath)
	}
	must(os.WriteFile(kekPath, sealbox.NewSymmetricKey(), 0o600))
	if _, err := tc.Nodes[0].C.CA(); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("CA() with a wrong KEK = %v, want an error saying it does not open the data key", err)
	}
	must(os.WriteFile(kekPath, kek, 0o600))
	if _, err := tc.Nodes[0].C.CA(); err != nil {
		t.Fatalf("CA() with the KEK back = %v", err)
	}
}

// With --autolock no controller writes the key-encryption key: the admin
// credentials --init wrote hold it (unlock_key), a joining controller gets
// it in memory, and a restarted controller is locked (cannot use the CA)
// until an admin unlocks it with the right key, over real mutual TLS.
func TestAutolock_RestartedControllerIsLockedUntilUnlocked(t *testing.T) {
	tc := &testCluster{Cluster: controllertest.NewCluster(t, 2, controllertest.WithConfig(func(c *controller.Config) { c.Autolock = true })), t: t}
	for _, n := range tc.Nodes {
		if _, err := os.Stat(filepath.Join(n.Dir, "kek")); !os.IsNotExist(err) {
			t.Errorf("%s wrote its kek file under --autolock (%v)", n.Name, err)
		}
	}
	key, err := base64.StdEncoding.DecodeString(tc.Admin.UnlockKey)
	if err != nil || len(key) != sealbox.SymmetricKeySize {
		t.Fatalf("admin credentials unlock_key = %q (%v), want a base64 key", tc.Admin.UnlockKey, err)
	}
	if _, err := tc.Nodes[1].C.CA(); err != nil {
		t.Fatalf("the joined controller cannot use the CA: %v", err)
	}
	tc.Kill(1)
	tc.Restart(1)
	waitFor(t, 30*time.Second, "the restarted controller to replay the cluster state", func() error {
		_, err := tc.Nodes[1].C.CA()
		if err != nil && strings.Contains(err.Error(), "not yet received") {
			return err
		}
		return nil
	})
	if _, err := tc.Nodes[1].C.CA(); err == nil || !strings.Contains(err.Error(), "kctl cluster unlock") {
		t.Fatalf("CA() after a restart = %v, want locked, saying to run kctl cluster unlock", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deployer := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[1].API, enrolled(t, tc, controllerv1.Role_ROLE_OPERATOR, "dee", "deployer")))
	_, err = deployer.Unlock(ctx, &controllerv1.UnlockRequest{Key: key})
	wantCode(t, "Unlock as deployer", err, codes.PermissionDenied, "may not call")
	admin := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[1].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	_, err = admin.Unlock(ctx, &controllerv1.UnlockRequest{Key: sealbox.NewSymmetricKey()})
	wantCode(t, "Unlock with a wrong key", err, codes.InvalidArgument, "not this cluster's unlock key")
	if _, err := tc.Nodes[1].C.CA(); err == nil {
		t.Fatal("a wrong key unlocked the controller")
	}
	resp, err := admin.Unlock(ctx, &controllerv1.UnlockRequest{Key: key})
	if err != nil || resp.GetController() != tc.Nodes[1].Name {
		t.Fatalf("Unlock = %v, %v", resp, err)
	}
	if _, err := tc.Nodes[1].C.CA(); err != nil {
		t.Fatalf("CA() after unlock = %v", err)
	}
	if _, err := os.Stat(filepath.Join(tc.Nodes[1].Dir, "kek")); !os.IsNotExist(err) {
		t.Errorf("unlock wrote the kek file under --autolock (%v)", err)
	}
}
