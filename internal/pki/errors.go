package pki

import "errors"

// Errors returned by this package. They are wrapped with context; test them
// with errors.Is.
var (
	// ErrInvalidIdentity means an identity (or the subject of a certificate)
	// does not name a valid cluster, role, operator role and name.
	ErrInvalidIdentity = errors.New("pki: invalid identity")
	// ErrInvalidKey means a private key could not be parsed or is not ECDSA P-256.
	ErrInvalidKey = errors.New("pki: invalid private key")
	// ErrInvalidCSR means a certificate signing request could not be parsed,
	// its signature is wrong, or its key is not ECDSA P-256.
	ErrInvalidCSR = errors.New("pki: invalid certificate signing request")
	// ErrInvalidCertificate means a certificate could not be parsed or does
	// not match its key.
	ErrInvalidCertificate = errors.New("pki: invalid certificate")
	// ErrInvalidCA means a CA certificate or key could not be loaded.
	ErrInvalidCA = errors.New("pki: invalid CA")
	// ErrUntrusted means a certificate was not issued by the cluster CA.
	ErrUntrusted = errors.New("pki: certificate not issued by the cluster CA")
	// ErrWrongRole means a peer's certificate names another role than required.
	ErrWrongRole = errors.New("pki: peer has the wrong role")
	// ErrWrongCluster means a certificate belongs to another cluster.
	ErrWrongCluster = errors.New("pki: certificate is for another cluster")
	// ErrIdentityChanged means Credentials.Update was given a certificate
	// for another cluster, role or name.
	ErrIdentityChanged = errors.New("pki: renewed certificate names another identity")
	// ErrMalformedToken means a join token is not KCTL1-<ca digest>-<secret>.
	ErrMalformedToken = errors.New("pki: malformed join token")
	// ErrCADigestMismatch means the CA a peer presented is not the one a
	// token pins.
	ErrCADigestMismatch = errors.New("pki: CA certificate does not match the token's CA digest")
)
