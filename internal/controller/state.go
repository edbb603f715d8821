package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// maxSerials bounds the certificate serials remembered per identity (the
// current one and those renewed recently, still valid).
const maxSerials = 4

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

func validName(n string) error {
	if !nameRE.MatchString(n) {
		return fmt.Errorf("%q is not a valid name: use letters, digits, '.', '_' and '-', up to 63 characters", n)
	}
	return nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// addSerial adds s to serials, keeping at most maxSerials: the oldest go
// first, but never keep, the certificate the caller presents. Renewing
// again and again without installing the result must not revoke the
// certificate still in use.
func addSerial(serials []string, s, keep string) []string {
	serials = append(slices.Clone(serials), s)
	for len(serials) > maxSerials {
		i := 0
		if serials[0] == keep {
			i = 1
		}
		serials = slices.Delete(serials, i, i+1)
	}
	return serials
}

// revoked is the Authorizer's revocation check. A certificate is revoked
// when its serial is in the revoked table, or when its agent or operator no
// longer exists or no longer lists the serial. A miss may be replication
// lag right after a join: confirm with a linearizable read before refusing.
func (c *Controller) revoked(id pki.Identity, serial string) bool {
	if c.check(c.store.View(), id, serial) {
		return false
	}
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	if err := c.linearize(ctx); err != nil {
		return true
	}
	return !c.check(c.store.View(), id, serial)
}

// check reports whether id with serial is known and not revoked in v.
func (c *Controller) check(v *raftstore.Snapshot, id pki.Identity, serial string) bool {
	if serial != "" {
		if ok := schema.Revoked.Has(v, serial); ok {
			return false
		}
	}
	var serials []string
	switch id.Role {
	case pki.RoleAgent:
		rec, _, ok := schema.Agents.Get(v, id.Name)
		if !ok {
			return false
		}
		serials = rec.GetSerials()
	case pki.RoleOperator:
		rec, _, ok := schema.Operators.Get(v, id.Name)
		if !ok || rec.GetRole() != string(id.OperatorRole) {
			return false
		}
		serials = rec.GetSerials()
	case pki.RoleController:
		rec, _, ok := schema.Nodes.Get(v, id.Name)
		if !ok {
			return false
		}
		serials = rec.GetSerials()
	default:
		return false
	}
	return serial == "" || slices.Contains(serials, serial)
}

// caller returns the authenticated caller, for records and logs.
func caller(ctx context.Context) string {
	id, err := pki.RemoteIdentity(ctx)
	if err != nil {
		return "anonymous"
	}
	return id.String()
}

// clusterRecord returns the CA and cluster id.
func (c *Controller) clusterRecord() (*controllerv1.ClusterRecord, error) {
	rec, _, ok := schema.Cluster.Get(c.store.View(), schema.KeyCA)
	if !ok {
		return nil, errors.New("controller: this controller has not yet received the cluster state")
	}
	return rec, nil
}

// ca loads the CA from Raft state.
func (c *Controller) ca() (*pki.CA, error) {
	rec, err := c.clusterRecord()
	if err != nil {
		return nil, err
	}
	keyPEM, err := c.caKeyPEM(rec)
	if err != nil {
		return nil, err
	}
	return pki.LoadCA(rec.GetCaCertPem(), keyPEM)
}

// controllerAddrs lists every controller's API address.
func (c *Controller) controllerAddrs() []string {
	var out []string
	for _, n := range schema.Nodes.Values(c.store, "") {
		if n.GetApiAddress() != "" {
			out = append(out, n.GetApiAddress())
		}
	}
	if len(out) == 0 {
		out = []string{c.cfg.APIAddress}
	}
	return out
}
