package pki

import (
	"context"
	"crypto/x509"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Metadata keys of identity forwarding (see WithIdentity). A request that
// carries them is honored only when its direct peer is a controller.
const (
	// ForwardedIdentityKey carries the original caller's identity,
	// URL-query encoded (cluster, role, name, operator_role).
	ForwardedIdentityKey = "kctl-forwarded-identity"
	// ForwardedCertKey carries the original caller's certificate DER (gRPC
	// base64-encodes "-bin" values on the wire), when the forwarder has it.
	// The receiver then derives the identity from the certificate, checks
	// it against the Authorizer's Roots and revocation by its serial.
	ForwardedCertKey = "kctl-forwarded-cert-bin"
)

// Policy maps full gRPC method names ("/kctl.controller.v1.Cluster/Status")
// to who may call them. A method not in the policy is denied to everyone.
type Policy map[string]Allow

// Allow says who may call a method.
type Allow struct {
	// Roles that may call the method.
	Roles []Role
	// OperatorRoles restricts operators (if RoleOperator is in Roles) to
	// these operator roles; empty means every operator role.
	OperatorRoles []OperatorRole
	// Public methods need no client certificate (Join: the joiner has none
	// yet). If a valid certificate is presented, RemoteIdentity returns it.
	Public bool
	// Audit marks a method that changes something: the controller's audit
	// interceptor records every call of it (who, from where, what, result).
	Audit bool
}

// permits reports whether id may call a method with this Allow.
func (a Allow) permits(id Identity) bool {
	if !slices.Contains(a.Roles, id.Role) {
		return false
	}
	return id.Role != RoleOperator || len(a.OperatorRoles) == 0 || slices.Contains(a.OperatorRoles, id.OperatorRole)
}

// Authorizer is the one gRPC interceptor that authenticates and authorizes
// every call against a Policy.
//
// For each unary call and each stream it: denies methods not in the Policy
// (PermissionDenied); lets Public methods through without a certificate;
// otherwise requires a client certificate verified by the TLS layer
// (Unauthenticated), checks its O is ClusterID (PermissionDenied), that it
// is within its validity at Now (Unauthenticated, "certificate expired": TLS
// checks only at the handshake and connections outlive certificates), and
// that Revoked is false (Unauthenticated, "certificate revoked"); resolves a
// forwarded identity when the direct peer is a controller; and checks the
// effective identity's role against the Policy (PermissionDenied). On
// streams the validity and revocation checks repeat for every message
// received or sent, so a revocation cuts a long-lived stream at its next
// message.
type Authorizer struct {
	Policy Policy
	// ClusterID is this cluster's ID; certificates must name it in O. It
	// must be set: empty denies every non-public call.
	ClusterID string
	// Revoked reports whether an identity or a certificate serial (as
	// Serial returns it; "" for a forwarded identity without a certificate)
	// is revoked. It consults Raft state and is called on every call and
	// stream message, so it must be fast. nil means nothing is revoked.
	Revoked func(id Identity, serial string) bool
	// Explain, if set, adds why a revoked certificate is refused to the
	// error (e.g. an identity unknown to a cluster restored from a backup).
	Explain func(id Identity, serial string) string
	// Now is the clock for validity checks; nil means time.Now.
	Now func() time.Time
	// Roots, if set, verifies forwarded certificates (ForwardedCertKey):
	// they must chain to it and be valid at Now. Use Credentials.CAPool().
	Roots *x509.CertPool
	// RootsFunc, if set, is used instead of Roots (a pool that changes
	// during a CA rotation: Credentials.CAPool).
	RootsFunc func() *x509.CertPool
}

// caller is the authenticated caller of one call or stream, stored in its
// context by the interceptor.
type caller struct {
	id       Identity          // effective identity (the forwarded one if forwarded)
	leaf     *x509.Certificate // id's certificate; nil for a forwarded identity without one
	peer     Identity          // direct peer
	peerLeaf *x509.Certificate
}

type callerKey struct{}

// UnaryInterceptor returns the interceptor for unary calls.
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, _, err := a.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor returns the interceptor for streams. Besides the checks
// at the start of the stream, it re-checks validity and revocation on every
// message received (RecvMsg) and sent (SendMsg).
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, c, err := a.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &authStream{ServerStream: ss, ctx: ctx, a: a, c: c})
	}
}

// authStream re-checks the caller on every message.
type authStream struct {
	grpc.ServerStream
	ctx context.Context
	a   *Authorizer
	c   *caller // nil on a Public method called without a certificate
}

func (s *authStream) Context() context.Context { return s.ctx }

func (s *authStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.a.recheck(s.c)
}

func (s *authStream) SendMsg(m any) error {
	if err := s.a.recheck(s.c); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

func (a *Authorizer) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// authorize runs every check for one call and returns the context carrying
// the caller (nil when a Public method is called without a valid certificate).
func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, *caller, error) {
	allow, ok := a.Policy[method]
	if !ok {
		return nil, nil, status.Errorf(codes.PermissionDenied, "pki: %s is not in the authorization policy", method)
	}
	leaf := peerLeaf(ctx)
	if leaf == nil {
		if allow.Public {
			return ctx, nil, nil
		}
		return nil, nil, status.Errorf(codes.Unauthenticated, "pki: %s requires a client certificate from the cluster CA", method)
	}
	c, err := a.identify(ctx, leaf)
	if err != nil {
		if allow.Public {
			// The certificate is no good, but none is needed: the caller
			// is anonymous (RemoteIdentity returns Unauthenticated).
			return context.WithValue(ctx, callerKey{}, (*caller)(nil)), nil, nil
		}
		return nil, nil, err
	}
	if !allow.Public && !allow.permits(c.id) {
		return nil, nil, status.Errorf(codes.PermissionDenied, "pki: %s may not call %s", c.id, method)
	}
	return context.WithValue(ctx, callerKey{}, c), c, nil
}

// identify checks the direct peer's certificate and resolves a forwarded
// identity.
func (a *Authorizer) identify(ctx context.Context, leaf *x509.Certificate) (*caller, error) {
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "%v", err)
	}
	c := &caller{id: id, leaf: leaf, peer: id, peerLeaf: leaf}
	if err := a.check(id, leaf); err != nil {
		return nil, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	fids, fcerts := md.Get(ForwardedIdentityKey), md.Get(ForwardedCertKey)
	if len(fids) == 0 && len(fcerts) == 0 {
		return c, nil
	}
	if id.Role != RoleController {
		return nil, status.Errorf(codes.PermissionDenied, "pki: %s may not forward an identity: only controllers may", id)
	}
	if len(fids) > 1 || len(fcerts) > 1 {
		return nil, status.Error(codes.PermissionDenied, "pki: more than one forwarded identity")
	}
	var fid Identity
	var fleaf *x509.Certificate
	if len(fcerts) == 1 {
		if fleaf, err = a.forwardedCert([]byte(fcerts[0])); err != nil {
			return nil, err
		}
		if fid, err = IdentityFromCert(fleaf); err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "pki: forwarded certificate: %v", err)
		}
	}
	if len(fids) == 1 {
		did, err := decodeIdentity(fids[0])
		if err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "pki: forwarded identity: %v", err)
		}
		if fleaf != nil && did != fid {
			return nil, status.Errorf(codes.PermissionDenied, "pki: forwarded identity %s does not match the forwarded certificate (%s)", did, fid)
		}
		fid = did
	}
	if err := a.check(fid, fleaf); err != nil {
		return nil, err
	}
	c.id, c.leaf = fid, fleaf
	return c, nil
}

// forwardedCert parses (and, with Roots, verifies) a forwarded certificate.
func (a *Authorizer) forwardedCert(der []byte) (*x509.Certificate, error) {
	fc, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "pki: forwarded certificate: %v", err)
	}
	roots := a.Roots
	if a.RootsFunc != nil {
		roots = a.RootsFunc()
	}
	if roots != nil {
		if _, err := fc.Verify(x509.VerifyOptions{
			Roots:       roots,
			CurrentTime: a.now(),
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}); err != nil {
			return nil, status.Errorf(codes.Unauthenticated, "pki: forwarded certificate: %v", err)
		}
	}
	return fc, nil
}

// check verifies an identity's cluster, its certificate's validity (if
// known) and revocation.
func (a *Authorizer) check(id Identity, leaf *x509.Certificate) error {
	if a.ClusterID == "" || id.ClusterID != a.ClusterID {
		return status.Errorf(codes.PermissionDenied, "pki: %s belongs to cluster %q, this is cluster %q", id, id.ClusterID, a.ClusterID)
	}
	serial := ""
	if leaf != nil {
		now := a.now()
		if now.After(leaf.NotAfter) {
			return status.Errorf(codes.Unauthenticated, "pki: certificate expired: %s (at %s)", id, leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		if now.Before(leaf.NotBefore) {
			return status.Errorf(codes.Unauthenticated, "pki: certificate not yet valid: %s", id)
		}
		serial = Serial(leaf)
	}
	if a.Revoked != nil && a.Revoked(id, serial) {
		if a.Explain != nil {
			if why := a.Explain(id, serial); why != "" {
				return status.Errorf(codes.Unauthenticated, "pki: certificate revoked: %s: %s", id, why)
			}
		}
		return status.Errorf(codes.Unauthenticated, "pki: certificate revoked: %s", id)
	}
	return nil
}

// recheck repeats the per-message checks of a stream's caller.
func (a *Authorizer) recheck(c *caller) error {
	if c == nil {
		return nil
	}
	if err := a.check(c.peer, c.peerLeaf); err != nil {
		return err
	}
	if c.id != c.peer || c.leaf != c.peerLeaf {
		return a.check(c.id, c.leaf)
	}
	return nil
}

// peerLeaf returns the direct peer's certificate if the TLS layer verified it.
func peerLeaf(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0][0]
}

// RemoteIdentity returns the caller's identity: the one the Authorizer
// established for this call (the forwarded one if a controller forwarded the
// request), else the identity of the verified peer certificate. It returns a
// codes.Unauthenticated status if there is none.
func RemoteIdentity(ctx context.Context) (Identity, error) {
	if c, ok := ctx.Value(callerKey{}).(*caller); ok {
		if c == nil {
			return Identity{}, status.Error(codes.Unauthenticated, "pki: the caller's certificate was not accepted")
		}
		return c.id, nil
	}
	if leaf := peerLeaf(ctx); leaf != nil {
		id, err := IdentityFromCert(leaf)
		if err != nil {
			return Identity{}, status.Errorf(codes.Unauthenticated, "%v", err)
		}
		return id, nil
	}
	return Identity{}, status.Error(codes.Unauthenticated, "pki: no verified client certificate")
}

// PeerIdentity returns the identity of the direct peer (the forwarding
// controller when a request was forwarded), or codes.Unauthenticated.
func PeerIdentity(ctx context.Context) (Identity, error) {
	if c, ok := ctx.Value(callerKey{}).(*caller); ok && c != nil {
		return c.peer, nil
	}
	return RemoteIdentity(ctx)
}

// WithIdentity returns a context for an outgoing call that forwards id as
// the caller's identity: a follower controller forwarding a request to the
// leader passes its incoming context, pki.WithIdentity(ctx, caller). The
// identity goes in ForwardedIdentityKey; if ctx is an incoming call context
// whose authenticated caller is id, its certificate goes in ForwardedCertKey
// so the receiver can check revocation by serial. The receiver honors them
// only when the direct peer is a controller.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(ForwardedIdentityKey, id.encode())
	md.Delete(ForwardedCertKey)
	if c, ok := ctx.Value(callerKey{}).(*caller); ok && c != nil && c.id == id && c.leaf != nil {
		md.Set(ForwardedCertKey, string(c.leaf.Raw))
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// interface assertions: authStream is a grpc.ServerStream.
var _ grpc.ServerStream = (*authStream)(nil)
