package controller_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// clusterRecord reads the cluster record from node i's store.
func clusterRecord(t testing.TB, tc *testCluster, i int) *controllerv1.ClusterRecord {
	t.Helper()
	rec, _, ok := schema.Cluster.Get(tc.Nodes[i].C.Store().View(), schema.KeyCA)
	if !ok {
		t.Fatalf("%s has no cluster record", tc.Nodes[i].Name)
	}
	return rec
}

// noFileHolds fails unless, within the deadline, no file of any data dir
// holds the CA key (any encoding, testenv.FindPrivateKeyInDir) nor any of
// values (raw bytes); each controller purges its storage asynchronously.
func noFileHolds(t *testing.T, tc *testCluster, caPub *ecdsa.PublicKey, values map[string][]byte) {
	t.Helper()
	waitFor(t, 30*time.Second, "no data dir to hold the old key material", func() error {
		for _, n := range tc.Nodes {
			hits, files, err := testenv.FindPrivateKeyInDir(caPub, n.Dir)
			if err != nil {
				return err
			}
			if len(hits) > 0 {
				return fmt.Errorf("%s's data dir holds the CA key: %s", n.Name, strings.Join(hits, "; "))
			}
			if files < 3 {
				return fmt.Errorf("%s: read %d files: nothing to check", n.Name, files)
			}
			err = filepath.WalkDir(n.Dir, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				for what, v := range values {
					if bytes.Contains(b, v) {
						return fmt.Errorf("%s's %s holds %s", n.Name, path, what)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// `kctl cluster unlock-key --rotate`: every controller of three takes the
// new KEK (its kek file) and opens the CA with it; the old KEK opens
// nothing any more: neither the data key in Raft nor, given to Unlock, a
// controller; the old wrapped data key leaves every data dir. Only admins
// may see or rotate the key, and both are audited.
func TestKeys_RotateUnlockKeyReachesEveryController(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[1].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	deployer := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[1].API, enrolled(t, tc, controllerv1.Role_ROLE_OPERATOR, "dee", "deployer")))
	_, err := deployer.UnlockKey(ctx, &controllerv1.UnlockKeyRequest{})
	wantCode(t, "UnlockKey as deployer", err, codes.PermissionDenied, "may not call")
	_, err = deployer.RotateDataKey(ctx, &controllerv1.RotateDataKeyRequest{})
	wantCode(t, "RotateDataKey as deployer", err, codes.PermissionDenied, "may not call")

	oldKEK, _ := os.ReadFile(filepath.Join(tc.Nodes[0].Dir, "kek"))
	shown, err := admin.UnlockKey(ctx, &controllerv1.UnlockKeyRequest{})
	if err != nil || !bytes.Equal(shown.GetUnlockKey(), oldKEK) {
		t.Fatalf("UnlockKey = %v, want the kek file's key", err)
	}
	oldWrapped := clusterRecord(t, tc, 0).GetDataKeyWrapped()
	resp, err := admin.UnlockKey(ctx, &controllerv1.UnlockKeyRequest{Rotate: true})
	if err != nil {
		t.Fatalf("UnlockKey(rotate) = %v", err)
	}
	newKEK := resp.GetUnlockKey()
	if len(newKEK) != sealbox.SymmetricKeySize || bytes.Equal(newKEK, oldKEK) {
		t.Fatalf("rotation returned key of %d bytes, equal to the old: %v", len(newKEK), bytes.Equal(newKEK, oldKEK))
	}
	if len(resp.GetControllers()) != 3 {
		t.Fatalf("deliveries = %v, want 3", resp.GetControllers())
	}
	for _, d := range resp.GetControllers() {
		if d.GetError() != "" {
			t.Errorf("%s did not take the new key: %s", d.GetController(), d.GetError())
		}
	}
	for i, n := range tc.Nodes {
		b, _ := os.ReadFile(filepath.Join(n.Dir, "kek"))
		if !bytes.Equal(b, newKEK) {
			t.Errorf("%s's kek file is not the new key", n.Name)
		}
		rec := clusterRecord(t, tc, i)
		if bytes.Equal(rec.GetDataKeyWrapped(), oldWrapped) {
			t.Errorf("%s still has the old wrapped data key", n.Name)
		}
		if _, err := sealbox.Unwrap(oldKEK, rec.GetDataKeyWrapped(), []byte("kctl data key v1\x00"+rec.GetClusterId())); err == nil {
			t.Errorf("the old KEK still opens %s's data key", n.Name)
		}
		if _, err := n.C.CA(); err != nil {
			t.Errorf("%s cannot open the CA after the rotation: %v", n.Name, err)
		}
	}
	_, err = admin.Unlock(ctx, &controllerv1.UnlockRequest{Key: oldKEK})
	wantCode(t, "Unlock with the old key", err, codes.InvalidArgument, "not this cluster's unlock key")
	if _, err := admin.Unlock(ctx, &controllerv1.UnlockRequest{Key: newKEK}); err != nil {
		t.Fatalf("Unlock with the new key = %v", err)
	}
	noFileHolds(t, tc, clusterCA(t, tc).Cert.PublicKey.(*ecdsa.PublicKey), map[string][]byte{"the old wrapped data key": oldWrapped})
	wantAudited(t, tc, "rotated the unlock key")
}

// wantAudited fails unless the audit holds an entry whose action contains
// action.
func wantAudited(t *testing.T, tc *testCluster, action string) {
	t.Helper()
	for _, r := range schema.Audit.Rows(tc.Nodes[0].C.Store().View()) {
		if strings.Contains(r.Value.GetAction(), action) {
			return
		}
	}
	t.Errorf("no audit entry says %q", action)
}

// With --autolock, a controller restarted after a rotation is locked: it
// refuses the old unlock key and takes the new one.
func TestKeys_AutolockedControllerRefusesTheOldUnlockKey(t *testing.T) {
	tc := &testCluster{Cluster: controllertest.NewCluster(t, 3, controllertest.WithConfig(func(c *controller.Config) { c.Autolock = true })), t: t}
	oldKEK, err := base64.StdEncoding.DecodeString(tc.Admin.UnlockKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	resp, err := admin.UnlockKey(ctx, &controllerv1.UnlockKeyRequest{Rotate: true})
	if err != nil {
		t.Fatalf("UnlockKey(rotate) = %v", err)
	}
	newKEK := resp.GetUnlockKey()
	for _, n := range tc.Nodes {
		if _, err := os.Stat(filepath.Join(n.Dir, "kek")); !os.IsNotExist(err) {
			t.Errorf("%s wrote a kek file under --autolock (%v)", n.Name, err)
		}
		if _, err := n.C.CA(); err != nil {
			t.Errorf("%s cannot open the CA after the rotation: %v", n.Name, err)
		}
	}
	tc.Kill(2)
	tc.Restart(2)
	waitFor(t, 30*time.Second, "the restarted controller to replay the rotation", func() error {
		rec, _, ok := schema.Cluster.Get(tc.Nodes[2].C.Store().View(), schema.KeyCA)
		if !ok || !proto.Equal(rec, clusterRecord(t, tc, 0)) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if _, err := tc.Nodes[2].C.CA(); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("CA() after a restart = %v, want locked", err)
	}
	locked := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[2].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	_, err = locked.Unlock(ctx, &controllerv1.UnlockRequest{Key: oldKEK})
	wantCode(t, "Unlock with the old key", err, codes.InvalidArgument, "not this cluster's unlock key")
	_, err = locked.UnlockKey(ctx, &controllerv1.UnlockKeyRequest{})
	wantCode(t, "UnlockKey on a locked controller", err, codes.FailedPrecondition, "locked")
	if _, err := locked.Unlock(ctx, &controllerv1.UnlockRequest{Key: newKEK}); err != nil {
		t.Fatalf("Unlock with the new key = %v", err)
	}
	if _, err := tc.Nodes[2].C.CA(); err != nil {
		t.Fatalf("CA() after unlock = %v", err)
	}
}

// `kctl cluster data-key rotate`: the CA key is sealed under a new data
// key in one Raft command, every controller still opens the CA with the
// same KEK, and neither the old sealed CA key nor the old wrapped data key
// remains in any data dir (log and older snapshots purged).
func TestKeys_RotateDataKeyPurgesTheOldCiphertext(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range tc.Nodes {
		if err := n.C.Store().Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	before := clusterRecord(t, tc, 0)
	kek, _ := os.ReadFile(filepath.Join(tc.Nodes[0].Dir, "kek"))
	admin := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[2].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	resp, err := admin.RotateDataKey(ctx, &controllerv1.RotateDataKeyRequest{})
	if err != nil {
		t.Fatalf("RotateDataKey = %v", err)
	}
	for _, d := range resp.GetControllers() {
		if d.GetError() != "" {
			t.Errorf("%s: %s", d.GetController(), d.GetError())
		}
	}
	for i, n := range tc.Nodes {
		rec := clusterRecord(t, tc, i)
		if bytes.Equal(rec.GetCaKeySealed(), before.GetCaKeySealed()) || bytes.Equal(rec.GetDataKeyWrapped(), before.GetDataKeyWrapped()) {
			t.Errorf("%s: the record was not re-sealed", n.Name)
		}
		if !bytes.Equal(rec.GetCaCertPem(), before.GetCaCertPem()) {
			t.Errorf("%s: the CA certificate changed", n.Name)
		}
		b, _ := os.ReadFile(filepath.Join(n.Dir, "kek"))
		if !bytes.Equal(b, kek) {
			t.Errorf("%s: the KEK changed", n.Name)
		}
		if _, err := n.C.CA(); err != nil {
			t.Errorf("%s cannot open the CA: %v", n.Name, err)
		}
	}
	noFileHolds(t, tc, clusterCA(t, tc).Cert.PublicKey.(*ecdsa.PublicKey), map[string][]byte{
		"the CA key sealed under the old data key": before.GetCaKeySealed(),
		"the old wrapped data key":                 before.GetDataKeyWrapped(),
	})
	wantAudited(t, tc, "rotated the data key")
	// The cluster still works: a join signs with the re-sealed CA key.
	enrolled(t, tc, controllerv1.Role_ROLE_OPERATOR, "after", "viewer")
}

// A cluster an older build made holds the CA key in plaintext in Raft and
// no kek file: its leader seals it at start under a new KEK that every
// controller receives, and the plaintext leaves every data dir (raft.db's
// log, the snapshots).
func TestKeys_PlaintextCAKeyIsSealedAtStart(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ca := clusterCA(t, tc)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	// The old layout: the record with ca_key_pem, written through Raft so
	// every controller's log and snapshot holds it.
	old := &controllerv1.ClusterRecord{ClusterId: ca.ClusterID(), CaCertPem: ca.CertPEM, CaKeyPem: keyPEM}
	leader := tc.Nodes[tc.Leader()].C.Store()
	if _, err := leader.Apply(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{schema.Cluster.Put(schema.KeyCA, old)}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range tc.Nodes {
		if err := n.C.Store().WaitForIndex(ctx, leader.AppliedIndex()); err != nil {
			t.Fatal(err)
		}
		if err := n.C.Store().Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	tc.KillAll()
	caPub := ca.Cert.PublicKey.(*ecdsa.PublicKey)
	for _, n := range tc.Nodes {
		if err := os.Remove(filepath.Join(n.Dir, "kek")); err != nil {
			t.Fatal(err)
		}
		if hits, _, _ := testenv.FindPrivateKeyInDir(caPub, n.Dir); len(hits) == 0 {
			t.Fatalf("%s: the old layout holds no plaintext CA key: the test checks nothing", n.Name)
		}
	}
	for i := range tc.Nodes {
		tc.Restart(i)
	}
	tc.Leader()
	waitFor(t, 30*time.Second, "every controller to open the sealed CA key", func() error {
		for i, n := range tc.Nodes {
			rec := clusterRecord(t, tc, i)
			if len(rec.GetCaKeyPem()) > 0 || len(rec.GetCaKeySealed()) == 0 {
				return fmt.Errorf("%s: the CA key is not sealed yet", n.Name)
			}
			if _, err := n.C.CA(); err != nil {
				return fmt.Errorf("%s: %v", n.Name, err)
			}
		}
		return nil
	})
	var kek []byte
	for _, n := range tc.Nodes {
		b, err := os.ReadFile(filepath.Join(n.Dir, "kek"))
		if err != nil || (kek != nil && !bytes.Equal(b, kek)) {
			t.Errorf("%s's kek file: %v (or it differs from the others')", n.Name, err)
		}
		kek = b
	}
	noFileHolds(t, tc, caPub, nil)
	wantAudited(t, tc, "sealed the CA key stored in plaintext")
	enrolled(t, tc, controllerv1.Role_ROLE_OPERATOR, "after", "viewer")
}

// A controller down during a rotation keeps the old KEK in its kek file:
// the rotation names it, it cannot sign after its restart (the error says
// why), and Unlock with the new key repairs it, writing its kek file.
func TestKeys_ControllerDownDuringRotationIsRepairedByUnlock(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tc.Kill(2)
	admin := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	resp, err := admin.UnlockKey(ctx, &controllerv1.UnlockKeyRequest{Rotate: true})
	if err != nil {
		t.Fatalf("UnlockKey(rotate) with c3 down = %v", err)
	}
	for _, d := range resp.GetControllers() {
		if (d.GetController() == tc.Nodes[2].Name) != (d.GetError() != "") {
			t.Errorf("delivery to %s: %q", d.GetController(), d.GetError())
		}
	}
	tc.Restart(2)
	waitFor(t, 30*time.Second, "c3 to replay the rotation", func() error {
		rec, _, ok := schema.Cluster.Get(tc.Nodes[2].C.Store().View(), schema.KeyCA)
		if !ok || !proto.Equal(rec, clusterRecord(t, tc, 0)) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if _, err := tc.Nodes[2].C.CA(); err == nil || !strings.Contains(err.Error(), "kctl cluster unlock") {
		t.Fatalf("CA() on c3 with the old kek file = %v, want an error saying to unlock it", err)
	}
	c3 := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[2].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	if _, err := c3.Unlock(ctx, &controllerv1.UnlockRequest{Key: resp.GetUnlockKey()}); err != nil {
		t.Fatalf("Unlock c3 with the new key = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(tc.Nodes[2].Dir, "kek")); !bytes.Equal(b, resp.GetUnlockKey()) {
		t.Error("Unlock did not write c3's kek file")
	}
	if _, err := tc.Nodes[2].C.CA(); err != nil {
		t.Fatalf("CA() on c3 after unlock = %v", err)
	}
}
