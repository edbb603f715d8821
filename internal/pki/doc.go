// Package pki is kctl's cluster certificate authority and the identity and
// authorization layer built on it.
//
// Every certificate names one identity (see [Identity]): CN is the name, OU
// holds the role (controller, agent or operator) and, for operators, the
// operator role (admin, deployer or viewer), O is the cluster ID. Keys are
// ECDSA P-256 and are made where they are used ([NewKey], [NewCSR]); only
// CSRs travel, and the [CA] signs them with the identity it decides, never the
// one the CSR asks for.
//
// Join tokens ([Token]) carry the SHA-256 digest of the CA certificate so a
// joining node pins the CA ([PinnedClientTLS]) before it trusts anything, and
// a secret of which only a hash is stored ([HashSecret], [SecretMatches]).
//
// [Credentials] hold a node's certificate and key with hot reload: after a
// renewal ([NeedsRenewal], [Credentials.Update]) new connections present the
// new certificate without restarting listeners. The [Authorizer] is the one
// gRPC interceptor that enforces a method → roles table (deny by default),
// checks the cluster, and consults revocation on every call and on every
// message received on a stream. docs/pki.md describes the design.
package pki
