package controller_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// canaryOps returns one operation of every kind that carries secrets, each
// secret field holding a distinct canary, and every canary.
func canaryOps() (map[string]*agentv1.Operation, []string) {
	var all []string
	c := func(what string) string {
		v := "canary-" + what + "-5e1d"
		all = append(all, v)
		return v
	}
	auth := func(k string) *specv1.RegistryAuth {
		return &specv1.RegistryAuth{Server: "reg", Username: c(k + "-user"), Password: c(k + "-password")}
	}
	container := func(k string) *specv1.Container {
		return &specv1.Container{Name: "app-web-v2", Image: "reg/app:v2",
			SecretEnv: []*specv1.KeyValue{{Key: "DB_PASSWORD", Value: c(k + "-env")}},
			Files:     []*specv1.File{{Path: "/etc/key", Content: []byte(c(k + "-file"))}}}
	}
	proxy := func(k string) *specv1.ProxyDeploy {
		return &specv1.ProxyDeploy{Service: "app-web", Files: []*specv1.File{{Path: "tls.key", Content: []byte(c(k + "-tls"))}}}
	}
	ops := map[string]*agentv1.Operation{
		"PullImage": {Op: &agentv1.Operation_PullImage{PullImage: &agentv1.PullImage{Image: "reg/app:v2", Auth: auth("pull")}}},
		"BootApp":   {Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{Container: container("app"), Proxy: proxy("app")}}},
		"BootProxy": {Op: &agentv1.Operation_BootProxy{BootProxy: &agentv1.BootProxy{Auth: auth("proxy"),
			Boot: &specv1.ProxyBoot{Container: container("proxy")}}}},
		"BootAccessory": {Op: &agentv1.Operation_BootAccessory{BootAccessory: &agentv1.BootAccessory{Auth: auth("acc"),
			Container: container("acc"), Proxy: proxy("acc")}}},
	}
	return ops, all
}

// canariesIn lists the canaries m holds.
func canariesIn(m proto.Message, canaries []string) []string {
	b, _ := proto.Marshal(m)
	var out []string
	for _, s := range canaries {
		if strings.Contains(string(b), s) {
			out = append(out, s)
		}
	}
	return out
}

// storeHolding lists the records of v, outside the tables in except, whose
// key or value holds a canary.
func storeHolding(v *raftstore.Snapshot, canaries []string, except ...string) []string {
	var out []string
	v.Each(func(table string, r raftstore.Record) bool {
		for _, e := range except {
			if e == table {
				return true
			}
		}
		for _, s := range canaries {
			if strings.Contains(r.Key, s) || strings.Contains(string(r.Value), s) {
				out = append(out, fmt.Sprintf("%s/%s holds %q", table, r.Key, s))
			}
		}
		return true
	})
	return out
}

// enrolled joins a new agent or operator through the API and returns its
// client certificate.
func enrolled(t testing.TB, tc *testCluster, role controllerv1.Role, name, opRole string) tls.Certificate {
	t.Helper()
	tok := mustToken(t, tc, role, name, opRole)
	key, _ := pki.NewKey()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := ctlclient.Join(ctx, tc.LiveAddrs(), tok, &controllerv1.JoinRequest{Token: tc.lastToken, CsrPem: mustCSR(t, key), Name: name}, 0)
	if err != nil {
		t.Fatalf("Join(%s %s) = %v", role, name, err)
	}
	return pair(t, resp.GetCertPem(), key)
}

// fileCert loads a certificate and key a controller or an agent keeps in
// its data directory.
func fileCert(t testing.TB, dir, cert, key string) tls.Certificate {
	t.Helper()
	c, err := os.ReadFile(filepath.Join(dir, cert))
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		t.Fatal(err)
	}
	return pair(t, c, k)
}

// roleCerts returns a client certificate for every kind of caller: the
// admin, a deployer, a viewer, a controller and the agent whose data
// directory is agentDir.
func roleCerts(t testing.TB, tc *testCluster, agentDir string) map[string]tls.Certificate {
	return map[string]tls.Certificate{
		"admin":      pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key)),
		"deployer":   enrolled(t, tc, controllerv1.Role_ROLE_OPERATOR, "dee", "deployer"),
		"viewer":     enrolled(t, tc, controllerv1.Role_ROLE_OPERATOR, "vee", "viewer"),
		"controller": fileCert(t, tc.Nodes[0].Dir, "node.crt", "node.key"),
		"agent":      fileCert(t, agentDir, "agent.crt", "agent.key"),
	}
}

// SendCommand and GetCommand, through real gRPC and mutual TLS, never
// return a secret value to any caller: admins, deployers and controllers
// see the commands redacted, viewers and agents are refused; the agent
// alone receives the values. The secrets are sealed, as kctl seals them,
// to the agent's encryption key, which ListAgents reports with the CA's
// certification: no table holds a value, and a plaintext value is refused.
func TestCommands_SecretsReachOnlyTheAgent(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	rt := &countingRuntime{}
	dir := filepath.Join(t.TempDir(), "web-1")
	tc.startAgentWith("web-1", rt, func(c *agent.Config) { c.DataDir = dir }, 0)
	certs := roleCerts(t, tc, dir)
	// SendCommand is an admin's; GetCommand a deployer's and a controller's
	// too.
	allowed := map[string]bool{"admin": true}
	mayGet := map[string]bool{"admin": true, "deployer": true, "controller": true}
	ops, canaries := canaryOps()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, certs["admin"]))
	for kind, op := range ops {
		_, err := admin.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1", Operation: op})
		wantCode(t, "SendCommand(plaintext "+kind+")", err, codes.InvalidArgument, "not sealed")
	}
	agents, err := admin.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
	if err != nil || len(agents.GetAgents()) != 1 {
		t.Fatalf("ListAgents = %v, %v", agents, err)
	}
	info := agents.GetAgents()[0]
	if err := sealbox.Verify(clusterCA(t, tc).Cert, "web-1", info.GetEncryptionKey(), info.GetEncryptionKeySig()); err != nil {
		t.Fatalf("the agent's encryption key: %v", err)
	}
	for kind, op := range ops {
		op = proto.Clone(op).(*agentv1.Operation)
		if err := sealbox.SealOperation(op, "web-1", info.GetEncryptionKey()); err != nil {
			t.Fatal(err)
		}
		ops[kind] = op
	}
	var someID string
	for _, role := range []string{"admin", "deployer", "controller", "viewer", "agent"} {
		cc := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, certs[role]))
		for kind, op := range ops {
			sent, err := cc.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1", Operation: op, Wait: true})
			if !allowed[role] {
				wantCode(t, "SendCommand as "+role, err, codes.PermissionDenied, "may not call")
				got, err := cc.GetCommand(ctx, &controllerv1.GetCommandRequest{Id: someID})
				if !mayGet[role] {
					wantCode(t, "GetCommand as "+role, err, codes.PermissionDenied, "may not call")
				} else if err != nil {
					t.Fatalf("GetCommand as %s = %v", role, err)
				} else if leak := canariesIn(got, canaries); len(leak) > 0 {
					t.Errorf("GetCommand as %s returned secrets %v", role, leak)
				}
				continue
			}
			if err != nil {
				t.Fatalf("SendCommand(%s) as %s = %v", kind, role, err)
			}
			if sent.GetCommand().GetState() != controllerv1.CommandState_COMMAND_STATE_DONE {
				t.Errorf("SendCommand(%s, wait) as %s = %v, want the answered command", kind, role, sent.GetCommand())
			}
			if leak := canariesIn(sent, canaries); len(leak) > 0 {
				t.Errorf("SendCommand(%s) as %s returned secrets %v", kind, role, leak)
			}
			if !strings.Contains(sent.GetCommand().GetOperation().String(), "[REDACTED]") {
				t.Errorf("SendCommand(%s) as %s returned no redacted operation: %v", kind, role, sent.GetCommand().GetOperation())
			}
			someID = sent.GetCommand().GetId()
			got, err := cc.GetCommand(ctx, &controllerv1.GetCommandRequest{Id: someID})
			if err != nil {
				t.Fatalf("GetCommand as %s = %v", role, err)
			}
			if leak := canariesIn(got, canaries); len(leak) > 0 {
				t.Errorf("GetCommand(%s) as %s returned secrets %v", kind, role, leak)
			}
		}
	}
	rt.mu.Lock()
	var received []string
	for _, op := range rt.ops {
		received = append(received, canariesIn(op, canaries)...)
	}
	rt.mu.Unlock()
	for _, s := range canaries {
		if !strings.Contains(strings.Join(received, " "), s) {
			t.Errorf("the agent never received %q", s)
		}
	}
	if leak := storeHolding(tc.Nodes[0].C.Store().View(), canaries); len(leak) > 0 {
		t.Errorf("the store holds secrets: %v", leak)
	}
}
