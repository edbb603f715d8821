package controller

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/backupfile"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// takeOverState is what a restore or a forced new cluster records once this
// node leads its one-node cluster (takeOver).
type takeOverState struct {
	// action is the audit entry's action.
	action, detail string
	// nodeSerial is this node's new certificate (restore), adminSerial the
	// admin credentials written beside it.
	nodeSerial, adminSerial string
	// revokeSelf revokes the serials this node's record held before (a
	// restore: the old node's certificates are not this node's).
	revokeSelf bool
}

// restoreCredentials (--restore FILE --init) checks the backup (format,
// protocol version, checksum, cluster), issues this node's certificate and
// new admin credentials from the backup's CA, and seeds the data dir with
// the backup's state. It returns the admin credentials file.
func (c *Controller) restoreCredentials() ([]byte, error) {
	b, err := backupfile.Open(c.cfg.Restore)
	if err != nil {
		return nil, fmt.Errorf("controller: --restore: %w", err)
	}
	defer b.Close()
	hdr := b.Header
	if err := protocol.CheckCluster("the backup", protocol.Normalize(hdr.GetProtocolVersion())); err != nil {
		return nil, fmt.Errorf("controller: --restore %s: %w", c.cfg.Restore, err)
	}
	if err := b.Verify(); err != nil {
		return nil, fmt.Errorf("controller: --restore: %w", err)
	}
	view, err := raftstore.ReadState(b.State())
	if err != nil {
		return nil, fmt.Errorf("controller: --restore %s: %w", c.cfg.Restore, err)
	}
	rec, _, ok := schema.Cluster.Get(view, schema.KeyCA)
	if !ok {
		return nil, fmt.Errorf("controller: --restore %s: the backup holds no cluster CA", c.cfg.Restore)
	}
	if rec.GetClusterId() != hdr.GetClusterId() {
		return nil, fmt.Errorf("controller: --restore %s: the header names cluster %q, the state holds cluster %q", c.cfg.Restore, hdr.GetClusterId(), rec.GetClusterId())
	}
	// The CA key is sealed in the backup as in Raft: it opens only with a
	// key-encryption key of the cluster (--kek-file: a copy of an old
	// controller's DATA_DIR/kek), so a stolen backup alone reveals no key.
	caKey, err := c.caKeyPEM(rec)
	if err != nil {
		return nil, fmt.Errorf("controller: --restore: the backup's CA key is sealed and does not open: %w (pass --kek-file with a copy of one of the cluster's controllers' DATA_DIR/kek)", err)
	}
	ca, err := pki.LoadCA(rec.GetCaCertPem(), caKey)
	if err != nil {
		return nil, fmt.Errorf("controller: --restore: the backup's CA: %w", err)
	}
	keyPEM, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	id := pki.Identity{ClusterID: ca.ClusterID(), Role: pki.RoleController, Name: c.cfg.Name}
	csr, err := pki.NewCSR(keyPEM, id)
	if err != nil {
		return nil, err
	}
	dns, ips := sans(c.cfg.APIAddress, c.cfg.RaftAddress)
	certPEM, err := ca.SignWithSANs(csr, id, pki.DefaultValidity(pki.RoleController), dns, ips)
	if err != nil {
		return nil, err
	}
	if c.creds, err = pki.NewCredentials(certPEM, keyPEM, ca.CertPEM); err != nil {
		return nil, err
	}
	adminKey, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	adminID := pki.Identity{ClusterID: ca.ClusterID(), Role: pki.RoleOperator, Name: "admin", OperatorRole: pki.OperatorAdmin}
	adminCSR, err := pki.NewCSR(adminKey, adminID)
	if err != nil {
		return nil, err
	}
	adminCert, err := ca.Sign(adminCSR, adminID, pki.DefaultValidity(pki.RoleOperator))
	if err != nil {
		return nil, err
	}
	adminLeaf, err := pki.ParseCertificate(adminCert)
	if err != nil {
		return nil, err
	}
	info, err := raftstore.Seed(c.cfg.DataDir, c.cfg.Name, c.cfg.RaftAddress, b.State())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	c.takeOver = &takeOverState{
		action:     "cluster restored from a backup",
		detail:     fmt.Sprintf("backup of cluster %s at index %d, saved %s by %s; %d records", hdr.GetClusterId(), info.Index, time.Unix(hdr.GetCreatedUnix(), 0).UTC().Format(time.RFC3339), hdr.GetCreatedBy(), info.Records),
		nodeSerial: pki.Serial(c.creds.Leaf()), adminSerial: pki.Serial(adminLeaf), revokeSelf: true,
	}
	c.log.Info("restoring the cluster from a backup", "file", c.cfg.Restore, "cluster", hdr.GetClusterId(), "applied_index", info.Index, "records", info.Records)
	f := &ctlclient.File{
		ClusterID: ca.ClusterID(), Name: "admin", Role: string(pki.OperatorAdmin),
		Controllers: []string{c.cfg.APIAddress},
		CA:          string(ca.CertPEM), Cert: string(adminCert), Key: string(adminKey),
	}
	yb, err := f.Marshal()
	if err != nil {
		return nil, err
	}
	if err := c.saveNode(keyPEM, certPEM, ca.CertPEM); err != nil {
		return nil, err
	}
	return yb, nil
}

// recordTakeOver runs once this node leads the one-node cluster a restore
// or --force-new-cluster started: it makes the state say so before the
// membership reconciler reads it. Every other controller's record is
// deleted and its certificates revoked (their data is gone or stale: they
// re-join with fresh data dirs and new tokens), the presence records of the
// old cluster are dropped, this node's record is written at its current
// addresses and protocol version, and the event is audited.
func (c *Controller) recordTakeOver(ctx context.Context) error {
	t := c.takeOver
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for !c.store.IsLeader() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: this node did not become leader of its one-node cluster", ErrNoLeader)
		case <-time.After(20 * time.Millisecond):
		}
	}
	v := c.store.View()
	var muts []*raftcmdv1.Mutation
	var removed []string
	self := &controllerv1.NodeRecord{Name: c.cfg.Name}
	for _, n := range schema.Nodes.Values(v, "") {
		if n.GetName() == c.cfg.Name && !t.revokeSelf {
			self = n
			continue
		}
		for _, sr := range n.GetSerials() {
			muts = append(muts, schema.Revoked.Put(sr, &emptypb.Empty{}))
		}
		if n.GetName() != c.cfg.Name {
			muts = append(muts, schema.Nodes.Delete(n.GetName()))
			removed = append(removed, n.GetName())
		}
	}
	if t.revokeSelf {
		self.Serials = []string{t.nodeSerial}
	}
	self.ApiAddress, self.RaftAddress, self.Voter = c.cfg.APIAddress, c.cfg.RaftAddress, true
	self.ProtocolVersion = uint32(protocol.Current())
	muts = append(muts, schema.Nodes.Put(c.cfg.Name, self), schema.Presence.DeletePrefix(""))
	if t.adminSerial != "" {
		admin, _, ok := schema.Operators.Get(v, "admin")
		if !ok || admin.GetRole() != string(pki.OperatorAdmin) {
			admin = &controllerv1.OperatorRecord{Name: "admin", Role: string(pki.OperatorAdmin), CreatedUnix: time.Now().Unix()}
		}
		admin.Serials = addSerial(admin.GetSerials(), t.adminSerial, "")
		muts = append(muts, schema.Operators.Put("admin", admin))
	}
	detail := t.detail
	if len(removed) > 0 {
		detail += fmt.Sprintf("; removed controllers %v (re-join them with fresh data dirs)", removed)
	}
	muts = append(muts, schema.Audit.Append(&deployv1.AuditEntry{
		UnixMillis: time.Now().UnixMilli(), Operator: "controller/" + c.cfg.Name, Action: t.action, Result: "ok", Detail: detail,
	}))
	if _, err := c.applyOK(ctx, &raftcmdv1.Command{Mutations: muts}); err != nil {
		return fmt.Errorf("controller: record %s: %w", t.action, err)
	}
	c.log.Warn(t.action, "detail", detail)
	return nil
}

// explainRevoked says why a certificate of this cluster's CA is refused
// when its identity is unknown but its serial was never revoked: it was
// issued after the backup this cluster was restored from (or its record
// is otherwise gone). Such an agent or operator must enrol again.
func (c *Controller) explainRevoked(id pki.Identity, serial string) string {
	v := c.store.View()
	if serial == "" || schema.Revoked.Has(v, serial) {
		return ""
	}
	var known bool
	switch id.Role {
	case pki.RoleAgent:
		known = schema.Agents.Has(v, id.Name)
	case pki.RoleOperator:
		known = schema.Operators.Has(v, id.Name)
	case pki.RoleController:
		known = schema.Nodes.Has(v, id.Name)
	}
	what := "this certificate"
	if !known {
		what = string(id.Role) + " " + id.Name
	}
	return what + " is not known to this cluster: if the cluster was restored from a backup, it was enrolled after that backup was saved; enrol it again with a new token (kctl token create) and an empty --data-dir"
}
