package kctl

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/pki/pkitest"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// kctl seals a request's secrets only to keys the cluster CA certified
// for that very agent: a forged, substituted, foreign-CA, missing or
// pre-encryption-key agent is refused with an error naming the host, and
// the certified agents get a bundle that opens with their keys.
func TestSealRequest_OnlyToCertifiedKeys(t *testing.T) {
	ca := pkitest.NewTestCA(t)
	foreign := pkitest.NewTestCA(t)
	k1, _ := sealbox.GenerateKey()
	attacker, _ := sealbox.GenerateKey()
	sig1, err := ca.CertifyEncryptionKey("h1", k1.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	foreignSig, _ := foreign.CertifyEncryptionKey("h1", k1.PublicKey())
	req := &deployv1.Request{Roles: []*deployv1.Role{{Name: "web", Hosts: []*deployv1.HostContainer{{Host: "h1", Container: &specv1.Container{
		SecretEnv: []*specv1.KeyValue{{Key: "DB_PASSWORD", Value: "canary-9b1c"}}}}}}}}
	good := &controllerv1.AgentInfo{Name: "h1", EncryptionKey: k1.PublicKey(), EncryptionKeySig: sig1}

	sealed := proto.Clone(req).(*deployv1.Request)
	if err := sealRequest(sealed, []*x509.Certificate{ca.Cert}, []*controllerv1.AgentInfo{good}); err != nil {
		t.Fatalf("sealRequest(certified) = %v", err)
	}
	if b, _ := proto.Marshal(sealed); strings.Contains(string(b), "canary-9b1c") {
		t.Fatal("the sealed request holds the secret")
	}
	if _, err := k1.Open("h1", sealed.GetSealedSecrets()["h1"]); err != nil {
		t.Fatalf("h1 cannot open its bundle: %v", err)
	}
	// During a CA rotation the credentials trust two CAs: a key certified
	// by either is accepted (the new CA certified every key again).
	rotated := &controllerv1.AgentInfo{Name: "h1", EncryptionKey: k1.PublicKey(), EncryptionKeySig: foreignSig}
	if err := sealRequest(proto.Clone(req).(*deployv1.Request), []*x509.Certificate{foreign.Cert, ca.Cert}, []*controllerv1.AgentInfo{rotated}); err != nil {
		t.Errorf("sealRequest(key certified by the other trusted CA) = %v", err)
	}

	for name, c := range map[string]struct {
		agents []*controllerv1.AgentInfo
		want   error
	}{
		"a substituted key":  {[]*controllerv1.AgentInfo{{Name: "h1", EncryptionKey: attacker.PublicKey(), EncryptionKeySig: sig1}}, sealbox.ErrCertification},
		"a foreign CA":       {[]*controllerv1.AgentInfo{{Name: "h1", EncryptionKey: k1.PublicKey(), EncryptionKeySig: foreignSig}}, sealbox.ErrCertification},
		"no signature":       {[]*controllerv1.AgentInfo{{Name: "h1", EncryptionKey: k1.PublicKey()}}, sealbox.ErrCertification},
		"no key (old agent)": {[]*controllerv1.AgentInfo{{Name: "h1"}}, sealbox.ErrNoKey},
		"another agent's":    {[]*controllerv1.AgentInfo{{Name: "h1", EncryptionKey: k1.PublicKey(), EncryptionKeySig: mustCertify(t, ca, "h2", k1)}}, sealbox.ErrCertification},
	} {
		err := sealRequest(proto.Clone(req).(*deployv1.Request), []*x509.Certificate{ca.Cert}, c.agents)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), "h1") {
			t.Errorf("sealRequest(%s) = %v, want %v naming h1", name, err, c.want)
		}
	}
	if err := sealRequest(proto.Clone(req).(*deployv1.Request), []*x509.Certificate{ca.Cert}, nil); err == nil || !strings.Contains(err.Error(), "no agent") {
		t.Errorf("sealRequest(no agent) = %v, want an error naming the missing agent", err)
	}
}

func mustCertify(t *testing.T, ca *pkitest.TestCA, agent string, k *sealbox.PrivateKey) []byte {
	sig, err := ca.CertifyEncryptionKey(agent, k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
