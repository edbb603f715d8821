package pkitest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/pki/pkitest"
)

func TestTestCA(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	if other := pkitest.NewTestCA(t); other.ClusterID == ca.ClusterID {
		t.Errorf("two TestCAs share the cluster ID %q", ca.ClusterID)
	}
	id := ca.Identity(pki.RoleOperator, "alice", pki.OperatorDeployer)
	if got := ca.Credentials(id).Identity(); got != id {
		t.Errorf("Credentials(%v).Identity() = %v", id, got)
	}
	if got, want := ca.Identity(pki.RoleAgent, "a", pki.OperatorAdmin).OperatorRole, pki.OperatorRole(""); got != want {
		t.Errorf("Identity(agent).OperatorRole = %q, want %q", got, want)
	}
	if leaf := ca.Expired(id).Leaf(); !time.Now().After(leaf.NotAfter) {
		t.Errorf("Expired(...).Leaf().NotAfter = %v, want in the past", leaf.NotAfter)
	}
	foreign := ca.Foreign(id)
	if err := foreign.Leaf().CheckSignatureFrom(ca.Cert); err == nil {
		t.Errorf("Foreign certificate verifies against the test CA")
	}
	if foreign.ClusterID() != ca.ClusterID {
		t.Errorf("Foreign cluster ID = %q, want %q", foreign.ClusterID(), ca.ClusterID)
	}
	if ca.ForeignCA() != ca.ForeignCA() {
		t.Errorf("ForeignCA() is not made once")
	}
	tok, hash := ca.Token()
	if tok.CADigest != ca.Digest() || !pki.SecretMatches(hash, tok.Secret) {
		t.Errorf("Token() = %v with a hash that does not match", tok)
	}
	cert, key := ca.ForeignCA().Pair(id, time.Hour)
	if _, err := pki.NewCredentials(cert, key, ca.CertPEM); !errors.Is(err, pki.ErrUntrusted) {
		t.Errorf("NewCredentials(foreign pair, test CA) error = %v, want ErrUntrusted", err)
	}
}
