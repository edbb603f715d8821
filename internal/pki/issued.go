package pki

import (
	"crypto/x509"
	"time"
)

// IssuedAt is when the CA signed c: Sign backdates NotBefore by a fixed
// clock skew allowance, which this undoes. A controller compares it with
// the time a name was removed from the cluster: certificates issued before
// the removal are refused, those of a later replacement under the same
// name are not.
func IssuedAt(c *x509.Certificate) time.Time { return c.NotBefore.Add(clockSkew) }
