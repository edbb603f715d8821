package controller

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// initState is what --init creates before Raft runs; bootstrap records it.
type initState struct {
	ca          *pki.CA
	nodeSerial  string
	adminSerial string
}

// sans returns the IP and DNS SANs for a controller reachable at addrs.
func sans(addrs ...string) ([]string, []net.IP) {
	dns := []string{"localhost"}
	var ips []net.IP
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			ips = append(ips, ip)
		} else if host != "" {
			dns = append(dns, host)
		}
	}
	return dns, ips
}

func (c *Controller) saveNode(keyPEM, certPEM, caPEM []byte) error {
	for _, f := range []struct {
		name string
		b    []byte
	}{{nodeKeyFile, keyPEM}, {caCertFile, caPEM}, {nodeCertFile, certPEM}} {
		if err := atomicfile.WriteFile(c.path(f.name), f.b, 0o600); err != nil {
			return fmt.Errorf("%w: %w", ErrDataDir, err)
		}
	}
	return c.markFreshDataDir()
}

// initCredentials creates the cluster CA, this node's certificate and the
// admin operator's credentials (returned as a credentials file).
func (c *Controller) initCredentials() ([]byte, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	clusterID := hex.EncodeToString(b)
	ca, err := pki.NewCA(clusterID)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	id := pki.Identity{ClusterID: clusterID, Role: pki.RoleController, Name: c.cfg.Name}
	csr, err := pki.NewCSR(keyPEM, id)
	if err != nil {
		return nil, err
	}
	dns, ips := sans(c.cfg.APIAddress, c.cfg.RaftAddress)
	certPEM, err := ca.SignWithSANs(csr, id, pki.DefaultValidity(pki.RoleController), dns, ips)
	if err != nil {
		return nil, err
	}
	if c.creds, err = pki.NewCredentials(certPEM, keyPEM, ca.CertPEM); err != nil {
		return nil, err
	}
	if err := c.saveKEK(sealbox.NewSymmetricKey()); err != nil {
		return nil, err
	}

	adminKey, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	adminID := pki.Identity{ClusterID: clusterID, Role: pki.RoleOperator, Name: "admin", OperatorRole: pki.OperatorAdmin}
	adminCSR, err := pki.NewCSR(adminKey, adminID)
	if err != nil {
		return nil, err
	}
	adminCert, err := ca.Sign(adminCSR, adminID, pki.DefaultValidity(pki.RoleOperator))
	if err != nil {
		return nil, err
	}
	adminLeaf, err := pki.ParseCertificate(adminCert)
	if err != nil {
		return nil, err
	}
	c.init = &initState{ca: ca, nodeSerial: pki.Serial(c.creds.Leaf()), adminSerial: pki.Serial(adminLeaf)}
	f := &ctlclient.File{
		ClusterID: clusterID, Name: "admin", Role: string(pki.OperatorAdmin),
		Controllers: []string{c.cfg.APIAddress},
		CA:          string(ca.CertPEM), Cert: string(adminCert), Key: string(adminKey),
	}
	if c.cfg.Autolock {
		// The one copy of the unlock key: the operator keeps it off the
		// controllers with the admin credentials.
		f.UnlockKey = base64.StdEncoding.EncodeToString(c.kek)
	}
	yb, err := f.Marshal()
	if err != nil {
		return nil, err
	}
	if err := c.saveNode(keyPEM, certPEM, ca.CertPEM); err != nil {
		return nil, err
	}
	return yb, nil
}

// bootstrap starts the one-node cluster and records the CA, this node and
// the admin operator.
func (c *Controller) bootstrap(ctx context.Context) error {
	if err := c.store.Bootstrap(); err != nil {
		return fmt.Errorf("controller: bootstrap: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !c.store.IsLeader() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: this node did not become leader of its new cluster", ErrNoLeader)
		case <-time.After(20 * time.Millisecond):
		}
	}
	keyPEM, err := c.init.ca.KeyPEM()
	if err != nil {
		return err
	}
	rec, err := sealCARecord(c.kek, c.init.ca.ClusterID(), c.init.ca.CertPEM, keyPEM)
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	_, err = c.applyOK(ctx, &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{
		schema.Cluster.Put(schema.KeyCA, rec),
		schema.Nodes.Put(c.cfg.Name, &controllerv1.NodeRecord{Name: c.cfg.Name, ApiAddress: c.cfg.APIAddress, RaftAddress: c.cfg.RaftAddress, Serials: []string{c.init.nodeSerial}, Voter: true, ProtocolVersion: uint32(protocol.Current()), IssuerDigest: c.init.ca.Digest()}),
		schema.Operators.Put("admin", &controllerv1.OperatorRecord{Name: "admin", Role: string(pki.OperatorAdmin), Serials: []string{c.init.adminSerial}, CreatedUnix: now, IssuerDigest: c.init.ca.Digest()}),
	}})
	return err
}

// loadCredentials loads the node's key and certificates from the data dir.
func (c *Controller) loadCredentials() error {
	var pems [3][]byte
	for i, name := range []string{nodeCertFile, nodeKeyFile, caCertFile} {
		b, err := os.ReadFile(c.path(name))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDataDir, err)
		}
		pems[i] = b
	}
	creds, err := pki.NewCredentials(pems[0], pems[1], pems[2])
	if err != nil {
		return fmt.Errorf("%w: stored credentials are unusable: %w", ErrDataDir, err)
	}
	if id := creds.Identity(); id.Role != pki.RoleController {
		return fmt.Errorf("%w: %s holds the certificate of %s %q, not of a controller (it joined with a wrong token): remove it (kctl %ss remove %s) and start over with an empty --data-dir and a controller token", ErrDataDir, c.cfg.DataDir, id.Role, id.Name, id.Role, id.Name)
	} else if id.Name != c.cfg.Name {
		return fmt.Errorf("%w: %s holds the state of controller %q, not %q (pass --name %s or another --data-dir)", ErrDataDir, c.cfg.DataDir, id.Name, c.cfg.Name, id.Name)
	}
	c.creds = creds
	return c.loadKEK()
}

// joinRetryFor bounds how long a join retries a cluster that does not
// answer (an election, a restarting node) before it gives up.
const joinRetryFor = 15 * time.Second

// joinCredentials exchanges the token and a CSR for a certificate.
func (c *Controller) joinCredentials(ctx context.Context) error {
	if c.cfg.Token == "" {
		return fmt.Errorf("%w: --join needs --token (make one with `kctl token create --role controller`)", ErrJoin)
	}
	tok, err := pki.ParseToken(c.cfg.Token)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJoin, err)
	}
	keyPEM, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(keyPEM, pki.Identity{Role: pki.RoleController, Name: c.cfg.Name})
	if err != nil {
		return err
	}
	req := &controllerv1.JoinRequest{
		Token: c.cfg.Token, CsrPem: csr, Name: c.cfg.Name,
		ApiAddress: c.cfg.APIAddress, RaftAddress: c.cfg.RaftAddress,
		ProtocolVersion: uint32(protocol.Current()), ProtocolOldest: uint32(protocol.Oldest()),
	}
	// An unreachable cluster or a leader change is retried with the same
	// key: a Join that committed but whose answer was lost is answered
	// again without using the token up (api.go Join). A refusal is final.
	var resp *controllerv1.JoinResponse
	giveUp := time.Now().Add(joinRetryFor)
	for {
		resp, err = ctlclient.Join(ctx, c.cfg.JoinAddrs, tok, req, 0)
		if err == nil || !errors.Is(err, ctlclient.ErrUnreachable) || time.Now().After(giveUp) {
			break
		}
		c.log.Warn("join failed; will retry", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrJoin, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJoin, err)
	}
	// A cluster older than versioning does not check; this side does.
	if err := protocol.CheckCluster("the cluster", protocol.Normalize(resp.GetProtocolVersion())); err != nil {
		return fmt.Errorf("%w: refusing to join: %w", ErrJoin, err)
	}
	if resp.GetRole() != controllerv1.Role_ROLE_CONTROLLER {
		return fmt.Errorf("%w: the token is not a controller token: make one with `kctl token create --role controller`", ErrJoin)
	}
	if c.creds, err = pki.NewCredentials(resp.GetCertPem(), keyPEM, resp.GetCaPem()); err != nil {
		return fmt.Errorf("%w: %w", ErrJoin, err)
	}
	c.joinPeers = resp.GetControllers()
	if kek := resp.GetKek(); len(kek) > 0 {
		if err := c.saveKEK(kek); err != nil {
			return err
		}
	} else {
		c.log.Warn("the cluster sent no key-encryption key: its CA key is stored in plaintext in Raft (a cluster made by an older controller)")
	}
	return c.saveNode(keyPEM, resp.GetCertPem(), resp.GetCaPem())
}

// renewLoop renews this controller's certificate before it expires: a
// controller holds the CA (in Raft) and signs its own renewal.
func (c *Controller) renewLoop(ctx context.Context) {
	t := c.cfg.Clock.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if pki.NeedsRenewal(c.creds.Leaf(), c.cfg.Clock.Now()) {
			if err := c.renewSelf(ctx); err != nil {
				c.log.Warn("certificate renewal failed; will retry", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

func (c *Controller) renewSelf(ctx context.Context) error {
	ca, err := c.ca()
	if err != nil {
		return err
	}
	keyPEM, err := pki.NewKey()
	if err != nil {
		return err
	}
	id := c.creds.Identity()
	csr, err := pki.NewCSR(keyPEM, id)
	if err != nil {
		return err
	}
	dns, ips := sans(c.cfg.APIAddress, c.cfg.RaftAddress)
	certPEM, err := ca.SignWithSANs(csr, id, pki.DefaultValidity(pki.RoleController), dns, ips)
	if err != nil {
		return err
	}
	leaf, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return err
	}
	if err := c.addSerialFrom(ctx, pki.RoleController, id.Name, pki.Serial(leaf), pki.Serial(c.creds.Leaf()), ca.Digest()); err != nil {
		return err
	}
	bundle := c.trustBundle()
	if err := c.creds.UpdateTrust(certPEM, keyPEM, bundle); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.path(caCertFile), bundle, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.path(nodeKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(c.path(nodeCertFile), certPEM, 0o600)
}
