package kctl

import (
	"context"
	"crypto/x509"
	"fmt"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// hasSecrets reports whether req carries any secret value.
func hasSecrets(req *deployv1.Request) bool {
	found := false
	sealbox.VisitRequest(req, func(_ string, f sealbox.Field) { found = found || f.Get() != "" })
	return found
}

// sealSecrets seals every secret of req to the agent of the host that needs
// it (internal/sealbox): the controllers store and forward only ciphertext.
// Each agent's encryption key is checked against the cluster CA of kctl's
// credentials first; a key the CA did not certify, or an agent without
// one, is refused.
func (g *globals) sealSecrets(ctx context.Context, req *deployv1.Request) error {
	if !hasSecrets(req) {
		return nil
	}
	var agents []*controllerv1.AgentInfo
	err := g.call(ctx, func(ctx context.Context, c controllerv1.ControllerServiceClient) error {
		resp, err := c.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
		agents = resp.GetAgents()
		return err
	})
	if err != nil {
		return err
	}
	// Read after the call: during a CA rotation the call renewed the
	// credentials, whose bundle then holds the new CA that certified the
	// agents' keys again.
	f, err := ctlclient.LoadFile(g.credentialsPath())
	if err != nil {
		return fmt.Errorf("cannot read credentials: %w", err)
	}
	creds, err := f.Credentials()
	if err != nil {
		return fmt.Errorf("credentials file %s is unusable: %w (kctl login again)", g.credentialsPath(), err)
	}
	return sealRequest(req, creds.CACerts(), agents)
}

// sealRequest seals req's secrets to agents, each key verified against one
// of cas (the credentials' trusted CAs: two during a CA rotation).
func sealRequest(req *deployv1.Request, cas []*x509.Certificate, agents []*controllerv1.AgentInfo) error {
	byName := map[string]*controllerv1.AgentInfo{}
	for _, a := range agents {
		byName[a.GetName()] = a
	}
	return sealbox.SealRequest(req, func(host string) ([]byte, error) {
		a, ok := byName[host]
		if !ok {
			return nil, fmt.Errorf("cannot seal secrets for %s: no agent of that name is enrolled (see `kctl agents`)", host)
		}
		var err error
		for _, ca := range cas {
			if err = sealbox.Verify(ca, host, a.GetEncryptionKey(), a.GetEncryptionKeySig()); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("cannot seal secrets for %s: %w", host, err)
		}
		return a.GetEncryptionKey(), nil
	})
}
