package controller

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// joinDigest reads a JoinRequest's CSR: the role it asks for ("" when it
// names none) and a function giving the digest of one use of a token by
// name with the CSR's key. A retried Join from the same joiner (same
// token, name and key) is recognized by that digest in the token record.
func joinDigest(req *controllerv1.JoinRequest) (pki.Role, func(name string) string, error) {
	csr, err := pki.ParseCSR(req.GetCsrPem())
	if err != nil {
		return "", nil, err
	}
	var role pki.Role
	for _, ou := range csr.Subject.OrganizationalUnit {
		if pki.Role(ou).Valid() {
			role = pki.Role(ou)
		}
	}
	pub, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return "", nil, err
	}
	return role, func(name string) string {
		h := sha256.New()
		h.Write([]byte("kctl-join:" + name + "\x00"))
		h.Write(pub)
		return hex.EncodeToString(h.Sum(nil)[:16])
	}, nil
}

// article is "a controller", "an agent", "an operator".
func article(r pki.Role) string {
	if r == pki.RoleAgent || r == pki.RoleOperator {
		return "an " + string(r)
	}
	return "a " + string(r)
}

// addSerialMutation records serial for an identity, keeping what
// addSerial keeps, as a mutation with its precondition.
func addSerialMutation(v *raftstore.Snapshot, role pki.Role, name, serial string) (*raftcmdv1.Mutation, *raftcmdv1.Precondition, error) {
	notFound := status.Errorf(codes.Unauthenticated, "controller: %s %q no longer exists", role, name)
	switch role {
	case pki.RoleController:
		rec, ver, ok := schema.Nodes.Get(v, name)
		if !ok {
			return nil, nil, notFound
		}
		rec.Serials = addSerial(rec.Serials, serial, "")
		return schema.Nodes.Put(name, rec), schema.Nodes.IfVersion(name, ver), nil
	case pki.RoleAgent:
		rec, ver, ok := schema.Agents.Get(v, name)
		if !ok {
			return nil, nil, notFound
		}
		rec.Serials = addSerial(rec.Serials, serial, "")
		return schema.Agents.Put(name, rec), schema.Agents.IfVersion(name, ver), nil
	}
	rec, ver, ok := schema.Operators.Get(v, name)
	if !ok {
		return nil, nil, notFound
	}
	rec.Serials = addSerial(rec.Serials, serial, "")
	return schema.Operators.Put(name, rec), schema.Operators.IfVersion(name, ver), nil
}

// peerSerial is the serial of the direct peer's verified certificate, ""
// when there is none.
func peerSerial(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return pki.Serial(ti.State.VerifiedChains[0][0])
}
