package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/url"
	"slices"
)

// Role is what a certificate's holder is in the cluster (its OU).
type Role string

// The roles.
const (
	RoleController Role = "controller"
	RoleAgent      Role = "agent"
	RoleOperator   Role = "operator"
)

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	return r == RoleController || r == RoleAgent || r == RoleOperator
}

// OperatorRole is what an operator may do (a second OU on operator
// certificates).
type OperatorRole string

// The operator roles: admin may do everything (tokens, removals), deployer
// deploys and runs app operations, viewer only reads.
const (
	OperatorAdmin    OperatorRole = "admin"
	OperatorDeployer OperatorRole = "deployer"
	OperatorViewer   OperatorRole = "viewer"
)

// Valid reports whether r is one of the defined operator roles.
func (r OperatorRole) Valid() bool {
	return r == OperatorAdmin || r == OperatorDeployer || r == OperatorViewer
}

// Identity is who a certificate names. Subject: CN = Name, OU = [Role,
// (operator role)], O = ClusterID.
type Identity struct {
	ClusterID    string
	Role         Role
	Name         string
	OperatorRole OperatorRole // operators only
}

// Validate reports whether id names a cluster, a valid role and a name, and
// an operator role exactly when Role is RoleOperator.
func (id Identity) Validate() error {
	switch {
	case id.ClusterID == "":
		return fmt.Errorf("%w: empty cluster ID", ErrInvalidIdentity)
	case id.Name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidIdentity)
	case !id.Role.Valid():
		return fmt.Errorf("%w: unknown role %q", ErrInvalidIdentity, id.Role)
	case id.Role == RoleOperator && !id.OperatorRole.Valid():
		return fmt.Errorf("%w: operator %q has unknown operator role %q", ErrInvalidIdentity, id.Name, id.OperatorRole)
	case id.Role != RoleOperator && id.OperatorRole != "":
		return fmt.Errorf("%w: %s %q has an operator role", ErrInvalidIdentity, id.Role, id.Name)
	}
	return nil
}

// String returns a readable form such as "agent web-1" or
// "operator alice (deployer)", for logs and error messages.
func (id Identity) String() string {
	if id.Role == RoleOperator {
		return fmt.Sprintf("%s %s (%s)", id.Role, id.Name, id.OperatorRole)
	}
	return fmt.Sprintf("%s %s", id.Role, id.Name)
}

// Subject returns the certificate subject that names id.
func (id Identity) Subject() pkix.Name {
	ou := []string{string(id.Role)}
	if id.OperatorRole != "" {
		ou = append(ou, string(id.OperatorRole))
	}
	return pkix.Name{
		CommonName:         id.Name,
		OrganizationalUnit: ou,
		Organization:       []string{id.ClusterID},
	}
}

// IdentityFromCert reads the identity a certificate names. It does not verify
// the certificate. DER sorts the values of one RDN, so the OU values are read
// as a set: role names and operator role names are disjoint.
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrInvalidIdentity)
	}
	s := c.Subject
	if len(s.Organization) != 1 {
		return Identity{}, fmt.Errorf("%w: want one O (cluster ID), got %d", ErrInvalidIdentity, len(s.Organization))
	}
	id := Identity{ClusterID: s.Organization[0], Name: s.CommonName}
	for _, ou := range s.OrganizationalUnit {
		switch {
		case Role(ou).Valid() && id.Role == "":
			id.Role = Role(ou)
		case OperatorRole(ou).Valid() && id.OperatorRole == "":
			id.OperatorRole = OperatorRole(ou)
		default:
			return Identity{}, fmt.Errorf("%w: unexpected OU %q", ErrInvalidIdentity, ou)
		}
	}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// encode returns id in a stable URL-query form, used in gRPC metadata.
func (id Identity) encode() string {
	v := url.Values{}
	v.Set("cluster", id.ClusterID)
	v.Set("role", string(id.Role))
	v.Set("name", id.Name)
	if id.OperatorRole != "" {
		v.Set("operator_role", string(id.OperatorRole))
	}
	return v.Encode()
}

// decodeIdentity parses what encode returns and validates it.
func decodeIdentity(s string) (Identity, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	for k, vals := range v {
		if !slices.Contains([]string{"cluster", "role", "name", "operator_role"}, k) || len(vals) != 1 {
			return Identity{}, fmt.Errorf("%w: unexpected field %q", ErrInvalidIdentity, k)
		}
	}
	id := Identity{
		ClusterID:    v.Get("cluster"),
		Role:         Role(v.Get("role")),
		Name:         v.Get("name"),
		OperatorRole: OperatorRole(v.Get("operator_role")),
	}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}
