// Package ctlclient is the client side of the controller API shared by kctl,
// the agent and joining controllers, one job per file: calling whichever
// controller answers (client.go), joining with a token, pinning the CA
// (join.go), the operator credentials file (credentials.go), the join token
// flags (token.go) and controller address lists (addrs.go).
package ctlclient

import (
	"errors"
	"time"
)

var (
	// ErrTokenRejected is returned when a controller refuses a join token or
	// presents a CA that does not match the token's digest.
	ErrTokenRejected = errors.New("join token rejected")
	// ErrUnreachable is returned when no controller answered.
	ErrUnreachable = errors.New("no controller reachable")
	// ErrOtherCluster is returned when a controller's certificate is not
	// from the CA in the credentials.
	ErrOtherCluster = errors.New("controller belongs to another cluster")
	// ErrCARotated is returned when the cluster rotated its CA and the
	// credentials were issued by the retired one (offline for the whole
	// grace period): the operator must enrol again with a new token.
	ErrCARotated = errors.New("the cluster's CA was rotated while these credentials were unused for the whole grace period")
)

// ControllersHeader is the response header in which controllers announce
// every controller's API address, so clients learn addresses they were not
// given.
const ControllersHeader = "kctl-controllers"

// CATrustHeader is the response header in which controllers announce the
// cluster's pki.TrustID; a client whose credentials differ renews its
// certificate (a CA rotation, docs/pki.md).
const CATrustHeader = "kctl-ca-trust"

// DefaultTimeout bounds one attempt to reach one controller.
const DefaultTimeout = 5 * time.Second

// VersionHeader is the response header in which a controller announces its
// build version (internal/version), shown by `kctl cluster status`.
const VersionHeader = "kctl-version"
