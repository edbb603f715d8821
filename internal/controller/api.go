package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/dispatcher"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/rpcerr"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
	"github.com/kctl-dev/kctl/internal/version"
)

// api serves ControllerService. Domain errors become gRPC status codes here
// and only here.
type api struct {
	controllerv1.UnimplementedControllerServiceServer
	c *Controller
}

// announce sets the ControllersHeader on every unary response, so clients
// learn every controller's address.
func (c *Controller) announce(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs(ctlclient.ControllersHeader, strings.Join(c.controllerAddrs(), ","),
		ctlclient.VersionHeader, version.Version, ctlclient.CATrustHeader, c.CATrust()))
	return handler(ctx, req)
}

func tokenID(secret string) string {
	h := sha256.Sum256([]byte("kctl-token-id:" + secret))
	return hex.EncodeToString(h[:6])
}

// roles pairs the API's roles with the certificates' roles.
var roles = []struct {
	api controllerv1.Role
	pki pki.Role
}{
	{controllerv1.Role_ROLE_CONTROLLER, pki.RoleController},
	{controllerv1.Role_ROLE_AGENT, pki.RoleAgent},
	{controllerv1.Role_ROLE_OPERATOR, pki.RoleOperator},
}

// roleOf is the certificate role of an API role ("" for none).
func roleOf(r controllerv1.Role) pki.Role {
	for _, m := range roles {
		if m.api == r {
			return m.pki
		}
	}
	return ""
}

// roleProto is the API role of a certificate role.
func roleProto(r pki.Role) controllerv1.Role {
	for _, m := range roles {
		if m.pki == r {
			return m.api
		}
	}
	return controllerv1.Role_ROLE_UNSPECIFIED
}

// identityTable is what Join needs of the table holding a role's
// identities, whatever its value type.
type identityTable interface {
	Has(r schema.Reader, key string) bool
	IfAbsent(key string) *raftcmdv1.Precondition
}

var (
	_ identityTable = schema.Nodes
	_ identityTable = schema.Agents
	_ identityTable = schema.Operators
)

// tableFor returns the table holding identities of a role.
func tableFor(r pki.Role) identityTable {
	switch r {
	case pki.RoleController:
		return schema.Nodes
	case pki.RoleAgent:
		return schema.Agents
	}
	return schema.Operators
}

// Join exchanges a token and a CSR for a certificate. Errors:
// Unauthenticated (unknown, expired or used-up token), InvalidArgument (bad
// token, CSR or name), AlreadyExists (name taken), PermissionDenied (the
// token names someone else), Unavailable (no leader).
func (s *api) Join(ctx context.Context, req *controllerv1.JoinRequest) (*controllerv1.JoinResponse, error) {
	c := s.c
	tok, err := pki.ParseToken(req.GetToken())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	ca, err := c.ca()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	if tok.CADigest != ca.Digest() && !c.trustsOldCA(tok.CADigest) {
		return nil, status.Error(codes.InvalidArgument, "controller: the token's CA digest does not match this cluster's CA: the token is for another cluster")
	}
	// Answer from memory what needs no read on the leader: a token
	// refused lately, or one this controller holds as expired or used up
	// (both final). A token it does not hold is bogus, revoked or just
	// created: those reach the leader at a bounded rate (limits.go).
	tid := tokenID(tok.Secret)
	if err := c.joins.refused(tid); err != nil {
		return nil, err
	}
	// The CSR is parsed only once the token is known: a used-up token may
	// admit a retry of the same joiner (name and key).
	lazyKey := func(name string) string {
		if _, jk, err := joinDigest(req); err == nil {
			return jk(name)
		}
		return ""
	}
	if rec, _, ok := schema.Tokens.Get(c.store.View(), tid); ok && pki.SecretMatches(rec.GetSecretHash(), tok.Secret) {
		if err := c.tokenUsable(rec, lazyKey, req.GetName()); err != nil {
			return nil, err
		}
	} else if err := c.joins.admit(ctx); err != nil {
		return nil, err
	}
	if err := c.linearize(ctx); err != nil {
		return nil, rpcerr.Status(err)
	}
	var resp *controllerv1.JoinResponse
	err = c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := schema.Tokens.Get(v, tid)
		if !ok || !pki.SecretMatches(rec.GetSecretHash(), tok.Secret) {
			return nil, errUnknownToken
		}
		if err := c.tokenUsable(rec, lazyKey, req.GetName()); err != nil {
			return nil, err
		}
		csrRole, joinKey, err := joinDigest(req)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "controller: %v", err)
		}
		role := roleOf(rec.GetRole())
		name := req.GetName()
		if role == pki.RoleOperator {
			name = rec.GetName()
		} else if rec.GetName() != "" && rec.GetName() != name {
			return nil, status.Errorf(codes.PermissionDenied, "controller: this token is for %q, not %q", rec.GetName(), name)
		}
		if err := validName(name); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "controller: %v", err)
		}
		digest := joinKey(name)
		retry := slices.Contains(rec.GetJoined(), digest)
		if !retry && rec.GetUsesLeft() == 0 {
			return nil, status.Error(codes.Unauthenticated, "controller: token already used up: ask an admin for a new one (kctl token create --uses N)")
		}
		table := tableFor(role)
		if !retry && table.Has(v, name) {
			return nil, status.Errorf(codes.AlreadyExists, "controller: a %s named %q already exists: pick another name, or remove the old one first", role, name)
		}
		if retry && !table.Has(v, name) {
			return nil, status.Errorf(codes.FailedPrecondition, "controller: %s %q joined with this token and was removed since: ask an admin for a new token", role, name)
		}
		if csrRole != "" && csrRole != role && (csrRole == pki.RoleController || role == pki.RoleController) {
			// A controller with another token, or anyone else with a
			// controller token: refused before anything is used up, so
			// no phantom identity is left behind.
			return nil, status.Errorf(codes.FailedPrecondition, "controller: this is %s token, but a%s asks to join with it: make a token with `kctl token create --role %s`",
				article(role), article(csrRole)[1:], csrRole)
		}
		if role == pki.RoleController && (req.GetApiAddress() == "" || req.GetRaftAddress() == "") {
			return nil, status.Error(codes.InvalidArgument, "controller: a joining controller must send its API and Raft addresses")
		}
		id := pki.Identity{ClusterID: c.clusterID, Role: role, Name: name, OperatorRole: pki.OperatorRole(rec.GetOperatorRole())}
		var certPEM []byte
		if role == pki.RoleController {
			if err := checkJoinProtocol(v, req); err != nil {
				return nil, err
			}
			dns, ips := sans(req.GetApiAddress(), req.GetRaftAddress())
			certPEM, err = ca.SignWithSANs(req.GetCsrPem(), id, pki.DefaultValidity(role), dns, ips)
		} else {
			certPEM, err = ca.Sign(req.GetCsrPem(), id, pki.DefaultValidity(role))
		}
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "controller: %v", err)
		}
		leaf, err := pki.ParseCertificate(certPEM)
		if err != nil {
			return nil, err
		}
		serial := pki.Serial(leaf)
		now := time.Now()
		resp = &controllerv1.JoinResponse{
			CertPem: certPEM, CaPem: c.trustBundle(), Controllers: c.controllerAddrs(),
			ClusterId: c.clusterID, Name: name, Role: rec.GetRole(), OperatorRole: rec.GetOperatorRole(),
			ProtocolVersion: uint32(clusterProtocol(v)),
		}
		if retry {
			// The same joiner (same name, same key, same token) asks
			// again, e.g. after the leader changed before it heard the
			// answer: record the new certificate, use nothing up.
			mut, pre, err := addSerialMutation(v, role, name, serial)
			if err != nil {
				return nil, err
			}
			return &raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{pre}, Mutations: []*raftcmdv1.Mutation{mut}}, nil
		}
		var record *raftcmdv1.Mutation
		switch role {
		case pki.RoleController:
			record = schema.Nodes.Put(name, &controllerv1.NodeRecord{Name: name, ApiAddress: req.GetApiAddress(), RaftAddress: req.GetRaftAddress(), Serials: []string{serial},
				ProtocolVersion: uint32(protocol.Normalize(req.GetProtocolVersion())), IssuerDigest: ca.Digest()})
		case pki.RoleAgent:
			ar := &controllerv1.AgentRecord{Name: name, Serials: []string{serial}, CreatedUnix: now.Unix(), IssuerDigest: ca.Digest()}
			if pub := req.GetEncryptionKey(); len(pub) > 0 {
				sig, err := ca.CertifyEncryptionKey(name, pub)
				if err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "controller: %v", err)
				}
				ar.EncryptionKey, ar.EncryptionKeySig = pub, sig
			}
			record = schema.Agents.Put(name, ar)
		default:
			record = schema.Operators.Put(name, &controllerv1.OperatorRecord{Name: name, Role: rec.GetOperatorRole(), Serials: []string{serial}, CreatedUnix: now.Unix(), IssuerDigest: ca.Digest()})
		}
		rec = proto.Clone(rec).(*controllerv1.TokenRecord)
		rec.UsesLeft--
		rec.Joined = append(rec.Joined, digest)
		muts := []*raftcmdv1.Mutation{schema.Tokens.Put(tid, rec), record}
		if rm, _, ok := schema.RemovedNodes.Get(v, name); ok && role == pki.RoleController {
			// A replacement under a removed name: its certificate must not
			// look older than the removal (certificate times are whole
			// seconds; another leader's clock may differ).
			if at := pki.IssuedAt(leaf).UnixMilli(); at < rm.GetRemovedUnixMillis() {
				muts = append(muts, schema.RemovedNodes.Put(name, &controllerv1.RemovedNodeRecord{Name: name, RemovedUnixMillis: at}))
			}
		}
		if role == pki.RoleController {
			// Over the pinned mTLS join only, to controllers only. (The CA
			// signed above, so this controller holds the KEK.)
			if resp.Kek, err = c.currentKEK(); err != nil {
				return nil, err
			}
		}
		return &raftcmdv1.Command{
			Preconditions: []*raftcmdv1.Precondition{schema.Tokens.IfVersion(tid, ver), table.IfAbsent(name)},
			Mutations:     muts,
		}, nil
	})
	if err != nil {
		c.joins.remember(tid, err)
		return nil, rpcerr.Status(err)
	}
	c.log.Info("joined", "role", resp.GetRole(), "name", resp.GetName())
	return resp, nil
}

// addSerial records a renewed certificate's serial for an identity,
// keeping keep (the serial of the certificate in use).
func (c *Controller) addSerial(ctx context.Context, role pki.Role, name, serial, keep string) error {
	return c.addSerialFrom(ctx, role, name, serial, keep, "")
}

// addSerialFrom is addSerial that also records the digest of the issuing
// CA (when not ""), for `kctl cluster ca status`.
func (c *Controller) addSerialFrom(ctx context.Context, role pki.Role, name, serial, keep, issuer string) error {
	switch role {
	case pki.RoleController:
		return updateSerials(ctx, c, schema.Nodes, name, serial, keep, func(r *controllerv1.NodeRecord) (*[]string, *string) { return &r.Serials, &r.IssuerDigest }, issuer)
	case pki.RoleAgent:
		return updateSerials(ctx, c, schema.Agents, name, serial, keep, func(r *controllerv1.AgentRecord) (*[]string, *string) { return &r.Serials, &r.IssuerDigest }, issuer)
	}
	return updateSerials(ctx, c, schema.Operators, name, serial, keep, func(r *controllerv1.OperatorRecord) (*[]string, *string) { return &r.Serials, &r.IssuerDigest }, issuer)
}

// updateSerials adds serial to the serials of the record name in t.
func updateSerials[M proto.Message](ctx context.Context, c *Controller, t schema.Table[M], name, serial, keep string, serials func(M) (*[]string, *string), issuer string) error {
	return c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := t.Get(v, name)
		if !ok {
			return nil, status.Errorf(codes.Unauthenticated, "controller: %s %q no longer exists", t.Name(), name)
		}
		s, iss := serials(rec)
		*s = addSerial(*s, serial, keep)
		if issuer != "" {
			*iss = issuer
		}
		return &raftcmdv1.Command{
			Preconditions: []*raftcmdv1.Precondition{t.IfVersion(name, ver)},
			Mutations:     []*raftcmdv1.Mutation{t.Put(name, rec)},
		}, nil
	})
}

// RenewCertificate signs a new certificate for the caller's identity.
// Errors: InvalidArgument (bad CSR), Unauthenticated (identity removed).
func (s *api) RenewCertificate(ctx context.Context, req *controllerv1.RenewCertificateRequest) (*controllerv1.RenewCertificateResponse, error) {
	c := s.c
	id, err := pki.RemoteIdentity(ctx)
	if err != nil {
		return nil, err
	}
	ca, err := c.ca()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	var certPEM []byte
	if id.Role == pki.RoleController {
		rec, _, _ := schema.Nodes.Get(c.store.View(), id.Name)
		dns, ips := sans(rec.GetApiAddress(), rec.GetRaftAddress())
		certPEM, err = ca.SignWithSANs(req.GetCsrPem(), id, pki.DefaultValidity(id.Role), dns, ips)
	} else {
		certPEM, err = ca.Sign(req.GetCsrPem(), id, pki.DefaultValidity(id.Role))
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "controller: %v", err)
	}
	leaf, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	if err := c.addSerialFrom(ctx, id.Role, id.Name, pki.Serial(leaf), peerSerial(ctx), ca.Digest()); err != nil {
		return nil, rpcerr.Status(err)
	}
	return &controllerv1.RenewCertificateResponse{CertPem: certPEM, CaPem: c.trustBundle()}, nil
}

// CreateToken makes a join token. Errors: InvalidArgument, AlreadyExists
// (operator name taken).
func (s *api) CreateToken(ctx context.Context, req *controllerv1.CreateTokenRequest) (*controllerv1.CreateTokenResponse, error) {
	c := s.c
	role := roleOf(req.GetRole())
	if role == "" {
		return nil, status.Error(codes.InvalidArgument, "controller: --role must be controller, agent or operator")
	}
	opRole := req.GetOperatorRole()
	if role == pki.RoleOperator {
		if req.GetName() == "" {
			return nil, status.Error(codes.InvalidArgument, "controller: an operator token needs --name")
		}
		if opRole == "" {
			opRole = string(pki.OperatorViewer)
		}
		if !pki.OperatorRole(opRole).Valid() {
			return nil, status.Errorf(codes.InvalidArgument, "controller: --operator-role must be admin, deployer or viewer, not %q", opRole)
		}
		if ok := schema.Operators.Has(c.store.View(), req.GetName()); ok {
			return nil, status.Errorf(codes.AlreadyExists, "controller: operator %q already exists (kctl operators remove %s first)", req.GetName(), req.GetName())
		}
	} else if opRole != "" {
		return nil, status.Error(codes.InvalidArgument, "controller: --operator-role is only for operator tokens")
	}
	if req.GetName() != "" {
		if err := validName(req.GetName()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "controller: %v", err)
		}
	}
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	if ttl < 0 {
		return nil, status.Error(codes.InvalidArgument, "controller: --ttl must be positive")
	}
	uses := req.GetUses()
	if uses == 0 {
		uses = 1
	}
	ca, err := c.ca()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	tok, err := pki.NewToken(ca)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	id := tokenID(tok.Secret)
	rec := &controllerv1.TokenRecord{
		Id: id, SecretHash: pki.HashSecret(tok.Secret), Role: req.GetRole(), Name: req.GetName(),
		OperatorRole: opRole, ExpiresUnix: c.cfg.Clock.Now().Add(ttl).Unix(), UsesLeft: uses, CreatedBy: caller(ctx),
	}
	if _, err := c.applyOK(ctx, &raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{schema.Tokens.IfAbsent(id)},
		Mutations:     []*raftcmdv1.Mutation{schema.Tokens.Put(id, rec)},
	}); err != nil {
		return nil, rpcerr.Status(err)
	}
	return &controllerv1.CreateTokenResponse{Token: tok.String(), Info: tokenInfo(rec)}, nil
}

func tokenInfo(r *controllerv1.TokenRecord) *controllerv1.TokenInfo {
	return &controllerv1.TokenInfo{Id: r.GetId(), Role: r.GetRole(), Name: r.GetName(), OperatorRole: r.GetOperatorRole(),
		ExpiresUnix: r.GetExpiresUnix(), UsesLeft: r.GetUsesLeft(), CreatedBy: r.GetCreatedBy()}
}

// ListTokens lists usable tokens. Errors: Unavailable (no leader to read
// through), Canceled, DeadlineExceeded.
func (s *api) ListTokens(ctx context.Context, _ *controllerv1.ListTokensRequest) (*controllerv1.ListTokensResponse, error) {
	if err := s.c.linearize(ctx); err != nil {
		return nil, rpcerr.Status(err)
	}
	resp := &controllerv1.ListTokensResponse{}
	now := s.c.cfg.Clock.Now().Unix()
	for _, t := range schema.Tokens.Values(s.c.store, "") {
		if t.GetExpiresUnix() > now && t.GetUsesLeft() > 0 {
			resp.Tokens = append(resp.Tokens, tokenInfo(t))
		}
	}
	return resp, nil
}

// RevokeToken deletes a token. Errors: NotFound.
func (s *api) RevokeToken(ctx context.Context, req *controllerv1.RevokeTokenRequest) (*controllerv1.RevokeTokenResponse, error) {
	_, err := s.c.applyOK(ctx, &raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{schema.Tokens.IfPresent(req.GetId())},
		Mutations:     []*raftcmdv1.Mutation{schema.Tokens.Delete(req.GetId())},
	})
	if errors.Is(err, errConflict) {
		return nil, status.Errorf(codes.NotFound, "controller: no token %q (kctl token list)", req.GetId())
	}
	return &controllerv1.RevokeTokenResponse{}, rpcerr.Status(err)
}

// AddController adds the calling controller to the Raft configuration as
// a nonvoter and promotes it to voter once it reports it is current
// (membership.go). Errors: NotFound (unknown controller), Unavailable (no
// leader), DeadlineExceeded.
func (s *api) AddController(ctx context.Context, req *controllerv1.AddControllerRequest) (*controllerv1.AddControllerResponse, error) {
	id, err := pki.RemoteIdentity(ctx)
	if err != nil {
		return nil, err
	}
	voter, err := s.c.addController(ctx, id, req)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	if !voter {
		// A catching-up joiner asks every 200 ms: only the promotion
		// (and the Join before it) is worth an audit entry.
		skipAudit(ctx)
	}
	return &controllerv1.AddControllerResponse{Voter: voter}, nil
}

// waitMembership waits until the Raft configuration does (or does not)
// hold name.
func (c *Controller) waitMembership(ctx context.Context, name string, present bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		servers, err := c.store.Servers()
		if err == nil && slices.ContainsFunc(servers, func(s raftstore.Server) bool { return s.ID == name }) == present {
			return nil
		}
		select {
		case <-ctx.Done():
			return status.Errorf(codes.DeadlineExceeded, "controller: the Raft configuration did not change in time for %s", name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RemoveController removes a controller from the cluster and revokes its
// certificates. Errors: NotFound, FailedPrecondition (the last controller).
func (s *api) RemoveController(ctx context.Context, req *controllerv1.RemoveControllerRequest) (*controllerv1.RemoveControllerResponse, error) {
	c := s.c
	name := req.GetName()
	err := c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := schema.Nodes.Get(v, name)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "controller: no controller %q (kctl cluster status)", name)
		}
		if len(schema.Nodes.Raw(v, "")) <= 1 {
			return nil, status.Error(codes.FailedPrecondition, "controller: cannot remove the last controller")
		}
		muts := []*raftcmdv1.Mutation{schema.Nodes.Delete(name), schema.Presence.Delete(name),
			schema.RemovedNodes.Put(name, &controllerv1.RemovedNodeRecord{Name: name, RemovedUnixMillis: time.Now().UnixMilli()})}
		for _, sr := range rec.GetSerials() {
			muts = append(muts, schema.Revoked.Put(sr, &emptypb.Empty{}))
		}
		return &raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{schema.Nodes.IfVersion(name, ver)}, Mutations: muts}, nil
	})
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	c.poke()
	return &controllerv1.RemoveControllerResponse{}, c.waitMembership(ctx, name, false)
}

// agentInfo is an agent as ListAgents and DescribeAgent show it.
func agentInfo(name string, p dispatcher.Presence) *controllerv1.AgentInfo {
	st := "disconnected"
	if p.Connected {
		st = "connected"
	}
	return &controllerv1.AgentInfo{Name: name, Status: st, Controller: p.Controller, LastSeenUnixMillis: p.LastSeenUnixMillis, Version: p.Version}
}

// ListAgents lists agents with their connection status, from local state.
// It does not fail.
func (s *api) ListAgents(ctx context.Context, _ *controllerv1.ListAgentsRequest) (*controllerv1.ListAgentsResponse, error) {
	v := s.c.store.View()
	pres := s.c.disp.Presence(v)
	resp := &controllerv1.ListAgentsResponse{}
	for _, r := range schema.Agents.Raw(v, "") {
		info := agentInfo(r.Key, pres[r.Key])
		if rec, _, ok := schema.Agents.Get(v, r.Key); ok {
			info.EncryptionKey, info.EncryptionKeySig = rec.GetEncryptionKey(), rec.GetEncryptionKeySig()
		}
		resp.Agents = append(resp.Agents, info)
	}
	resp.Agents = append(resp.Agents, pendingAgents(v, s.c.cfg.Clock.Now())...)
	return resp, nil
}

// pendingAgents lists the agents that a named, unused, unexpired agent
// token (`kctl agents add`) expects and that have not joined yet.
func pendingAgents(v *raftstore.Snapshot, now time.Time) []*controllerv1.AgentInfo {
	seen := map[string]bool{}
	var out []*controllerv1.AgentInfo
	for _, t := range schema.Tokens.Values(v, "") {
		n := t.GetName()
		if t.GetRole() != controllerv1.Role_ROLE_AGENT || n == "" || seen[n] || t.GetUsesLeft() == 0 ||
			now.Unix() >= t.GetExpiresUnix() || schema.Agents.Has(v, n) {
			continue
		}
		seen[n] = true
		out = append(out, &controllerv1.AgentInfo{Name: n, Status: "pending"})
	}
	return out
}

// DescribeAgent reports an agent and its facts. Errors: NotFound.
func (s *api) DescribeAgent(ctx context.Context, req *controllerv1.DescribeAgentRequest) (*controllerv1.DescribeAgentResponse, error) {
	v := s.c.store.View()
	rec, _, ok := schema.Agents.Get(v, req.GetName())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "controller: no agent %q (kctl agents)", req.GetName())
	}
	pres := s.c.disp.Presence(v)
	info := agentInfo(rec.GetName(), pres[rec.GetName()])
	info.EncryptionKey, info.EncryptionKeySig = rec.GetEncryptionKey(), rec.GetEncryptionKeySig()
	resp := &controllerv1.DescribeAgentResponse{Agent: info, Facts: rec.GetFacts(), FactsUnixMillis: rec.GetFactsUnixMillis()}
	if req.GetFresh() && resp.GetAgent().GetStatus() == "connected" {
		if f := s.c.freshFacts(ctx, rec.GetName()); f != nil {
			resp.Facts, resp.FactsUnixMillis = f, s.c.cfg.Clock.Now().UnixMilli()
		}
	}
	return resp, nil
}

// RemoveAgent deletes an agent, its pending commands, and revokes its
// certificates: it can never connect again. Errors: NotFound.
func (s *api) RemoveAgent(ctx context.Context, req *controllerv1.RemoveAgentRequest) (*controllerv1.RemoveAgentResponse, error) {
	name := req.GetName()
	err := s.c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := schema.Agents.Get(v, name)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "controller: no agent %q (kctl agents)", name)
		}
		muts := []*raftcmdv1.Mutation{schema.Agents.Delete(name), schema.Commands.DeletePrefix(schema.CommandKey(name, ""))}
		for _, sr := range rec.GetSerials() {
			muts = append(muts, schema.Revoked.Put(sr, &emptypb.Empty{}))
		}
		return &raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{schema.Agents.IfVersion(name, ver)}, Mutations: muts}, nil
	})
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	s.c.disp.Kick(name)
	s.c.barrier(ctx)
	return &controllerv1.RemoveAgentResponse{}, nil
}

// ListOperators lists operators, from local state. It does not fail.
func (s *api) ListOperators(ctx context.Context, _ *controllerv1.ListOperatorsRequest) (*controllerv1.ListOperatorsResponse, error) {
	resp := &controllerv1.ListOperatorsResponse{}
	for _, o := range schema.Operators.Values(s.c.store, "") {
		resp.Operators = append(resp.Operators, &controllerv1.OperatorInfo{Name: o.GetName(), Role: o.GetRole(), CreatedUnix: o.GetCreatedUnix()})
	}
	return resp, nil
}

// RemoveOperator deletes an operator and revokes its certificates. Errors:
// NotFound, FailedPrecondition (the last admin).
func (s *api) RemoveOperator(ctx context.Context, req *controllerv1.RemoveOperatorRequest) (*controllerv1.RemoveOperatorResponse, error) {
	name := req.GetName()
	err := s.c.update(ctx, func(v *raftstore.Snapshot) (*raftcmdv1.Command, error) {
		rec, ver, ok := schema.Operators.Get(v, name)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "controller: no operator %q (kctl operators)", name)
		}
		if rec.GetRole() == string(pki.OperatorAdmin) {
			admins := 0
			for _, o := range schema.Operators.Values(v, "") {
				if o.GetRole() == string(pki.OperatorAdmin) {
					admins++
				}
			}
			if admins <= 1 {
				return nil, status.Errorf(codes.FailedPrecondition, "controller: %q is the last admin; create another admin first (kctl token create --role operator --operator-role admin)", name)
			}
		}
		muts := []*raftcmdv1.Mutation{schema.Operators.Delete(name)}
		for _, sr := range rec.GetSerials() {
			muts = append(muts, schema.Revoked.Put(sr, &emptypb.Empty{}))
		}
		return &raftcmdv1.Command{Preconditions: []*raftcmdv1.Precondition{schema.Operators.IfVersion(name, ver)}, Mutations: muts}, nil
	})
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	s.c.barrier(ctx)
	return &controllerv1.RemoveOperatorResponse{}, nil
}

// SendCommand records a command for an agent and, with wait, waits for its
// result. Errors: NotFound (no such agent), InvalidArgument,
// DeadlineExceeded.
func (s *api) SendCommand(ctx context.Context, req *controllerv1.SendCommandRequest) (*controllerv1.SendCommandResponse, error) {
	if req.GetOperation().GetOp() == nil {
		return nil, status.Error(codes.InvalidArgument, "controller: no operation")
	}
	if err := sealbox.CheckOperationSealed(req.GetOperation()); err != nil {
		return nil, status.Error(codes.InvalidArgument, "controller: "+err.Error())
	}
	id, err := s.c.sendCommand(ctx, req.GetAgent(), req.GetId(), req.GetOperation())
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	var rec *controllerv1.CommandRecord
	if req.GetWait() {
		rec, err = s.c.WaitResult(ctx, id)
	} else {
		rec, err = s.c.Command(id)
	}
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	return &controllerv1.SendCommandResponse{Command: redactCommand(rec)}, nil
}

// redactCommand strips secret values from a command record before it
// leaves the controller: the agent alone receives them.
func redactCommand(rec *controllerv1.CommandRecord) *controllerv1.CommandRecord {
	rec = proto.Clone(rec).(*controllerv1.CommandRecord)
	rec.Operation = deploy.RedactOperation(rec.GetOperation())
	return rec
}

// GetCommand reports a command. Errors: NotFound.
func (s *api) GetCommand(ctx context.Context, req *controllerv1.GetCommandRequest) (*controllerv1.GetCommandResponse, error) {
	rec, err := s.c.Command(req.GetId())
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	return &controllerv1.GetCommandResponse{Command: redactCommand(rec)}, nil
}
