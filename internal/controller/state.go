package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// Tables of the replicated store. Values are controllerv1 messages.
const (
	tCluster   = "cluster"   // "ca" → ClusterRecord
	tTokens    = "tokens"    // token id → TokenRecord
	tNodes     = "nodes"     // controller name → NodeRecord
	tAgents    = "agents"    // agent name → AgentRecord
	tOperators = "operators" // operator name → OperatorRecord
	tRevoked   = "revoked"   // certificate serial → empty
	tCommands  = "commands"  // "<agent>/<id>" → CommandRecord
	tPresence  = "presence"  // controller name → PresenceRecord
)

const keyCA = "ca"

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

// get reads and decodes one record from a view.
func get[T proto.Message](v *raftstore.Snapshot, table, key string, msg T) (T, uint64, bool) {
	r, ok := v.Get(table, key)
	if !ok {
		return msg, 0, false
	}
	if err := proto.Unmarshal(r.Value, msg); err != nil {
		// Values are written only by this package; a decode failure is a
		// bug, not a runtime condition.
		panic(fmt.Sprintf("controller: decode %s/%s: %v", table, key, err))
	}
	return msg, r.ModifyIndex, true
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func put(table, key string, m proto.Message) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Put{Put: &raftcmdv1.Put{Table: table, Key: key, Value: mustMarshal(m)}}}
}

func del(table, key string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Delete{Delete: &raftcmdv1.Delete{Table: table, Key: key}}}
}

func ifVersion(table, key string, version uint64) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: table, Key: key, Check: &raftcmdv1.Precondition_Version{Version: version}}
}

func ifAbsent(table, key string) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: table, Key: key, Check: &raftcmdv1.Precondition_Absent{Absent: true}}
}

func ifPresent(table, key string) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: table, Key: key, Check: &raftcmdv1.Precondition_Present{Present: true}}
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func addSerial(serials []string, s string) []string {
	serials = append(slices.Clone(serials), s)
	if len(serials) > maxSerials {
		serials = serials[len(serials)-maxSerials:]
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
		if _, ok := v.Get(tRevoked, serial); ok {
			return false
		}
	}
	var serials []string
	switch id.Role {
	case pki.RoleAgent:
		rec, _, ok := get(v, tAgents, id.Name, &controllerv1.AgentRecord{})
		if !ok {
			return false
		}
		serials = rec.GetSerials()
	case pki.RoleOperator:
		rec, _, ok := get(v, tOperators, id.Name, &controllerv1.OperatorRecord{})
		if !ok || rec.GetRole() != string(id.OperatorRole) {
			return false
		}
		serials = rec.GetSerials()
	case pki.RoleController:
		rec, _, ok := get(v, tNodes, id.Name, &controllerv1.NodeRecord{})
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
	rec, _, ok := get(c.store.View(), tCluster, keyCA, &controllerv1.ClusterRecord{})
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
	return pki.LoadCA(rec.GetCaCertPem(), rec.GetCaKeyPem())
}

// controllerAddrs lists every controller's API address.
func (c *Controller) controllerAddrs() []string {
	var out []string
	for _, r := range c.store.View().List(tNodes, "") {
		var n controllerv1.NodeRecord
		if proto.Unmarshal(r.Value, &n) == nil && n.GetApiAddress() != "" {
			out = append(out, n.GetApiAddress())
		}
	}
	if len(out) == 0 {
		out = []string{c.cfg.APIAddress}
	}
	return out
}

func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	return ctlclient.WriteFileAtomic(path, b, perm)
}
