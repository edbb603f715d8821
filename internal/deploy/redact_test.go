package deploy

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

// secretRequest names a secret in every kind of secret-bearing field.
func secretRequest() *deployv1.Request {
	container := func(name string) *specv1.Container {
		return &specv1.Container{Name: name, Image: "reg/app:v2",
			SecretEnv: []*specv1.KeyValue{{Key: "A", Value: "env-" + name}, {Key: "SAME", Value: "shared"}},
			Files:     []*specv1.File{{Path: "f", Content: []byte("file-" + name)}}}
	}
	auth := &specv1.RegistryAuth{Server: "reg", Username: "reg-user", Password: "reg-password"}
	return &deployv1.Request{
		Service: "app", Version: "v2", Image: "reg/app:v2", Repository: "reg/app", LatestTag: "latest", PrimaryRole: "web",
		Registry: auth,
		Roles: []*deployv1.Role{
			{Name: "web", Hosts: []*deployv1.HostContainer{{Host: "h1", Container: container("web-h1")}, {Host: "h2", Container: container("web-h2")}},
				Proxy: &specv1.ProxyDeploy{Service: "app-web", Files: []*specv1.File{{Path: "tls.key", Content: []byte("tls-key")}}}},
		},
		Accessories: []*deployv1.Accessory{{Name: "db", Hosts: []*deployv1.HostContainer{{Host: "h3", Container: container("db-h3")}},
			Registry: &specv1.RegistryAuth{Server: "other", Username: "acc-user", Password: "acc-password"}}},
		ProxyHosts: []*deployv1.ProxyHost{{Host: "h1", Boot: &specv1.ProxyBoot{Container: &specv1.Container{Image: "reg/proxy", SecretEnv: []*specv1.KeyValue{{Key: "P", Value: "proxy-env"}}}}}},
	}
}

var secretValues = []string{"env-web-h1", "env-web-h2", "env-db-h3", "shared", "file-web-h1", "file-db-h3", "reg-user", "reg-password", "tls-key", "acc-user", "acc-password", "proxy-env"}

func TestSealPlan_ResolvesToThePlannedOperations(t *testing.T) {
	req := secretRequest()
	fleet := scheduler.FleetMap{"h1": scheduler.AgentConnected, "h2": scheduler.AgentConnected, "h3": scheduler.AgentConnected}
	plan, err := scheduler.Plan(req, fleet)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealPlan(plan, req)
	if err != nil {
		t.Fatalf("sealPlan = %v", err)
	}
	b, _ := proto.Marshal(sealed)
	for _, v := range secretValues {
		if strings.Contains(string(b), v) {
			t.Errorf("the sealed plan holds the secret %q", v)
		}
	}
	// The runner reads the secrets record back from the store.
	stored := &deployv1.Request{}
	rb, _ := proto.Marshal(req)
	if err := proto.Unmarshal(rb, stored); err != nil {
		t.Fatal(err)
	}
	want, got := scheduler.Steps(plan), scheduler.Steps(sealed)
	for i, s := range got {
		op, err := resolveOperation(s.GetOp(), stored)
		if err != nil {
			t.Fatalf("resolveOperation(%s) = %v", s.GetId(), err)
		}
		if !proto.Equal(op, want[i].GetOp()) {
			t.Errorf("resolveOperation(%s) = %v, want %v", s.GetId(), op, want[i].GetOp())
		}
	}
}

func TestResolveOperation_UnknownReference(t *testing.T) {
	req := secretRequest()
	plan, err := scheduler.Plan(req, scheduler.FleetMap{"h1": scheduler.AgentConnected, "h2": scheduler.AgentConnected, "h3": scheduler.AgentConnected})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealPlan(plan, req)
	if err != nil {
		t.Fatal(err)
	}
	pull := scheduler.Steps(sealed)[3] // after three network steps
	if pull.GetOp().GetPullImage() == nil {
		t.Fatalf("step 3 is %s, want a pull", pull.GetId())
	}
	if _, err := resolveOperation(pull.GetOp(), &deployv1.Request{}); !errors.Is(err, ErrSecretRef) {
		t.Errorf("resolveOperation against an empty record = %v, want ErrSecretRef", err)
	}
}

func TestRedact_RemovesEverySecret(t *testing.T) {
	req := secretRequest()
	b, _ := proto.Marshal(Redact(req))
	for _, v := range secretValues {
		if strings.Contains(string(b), v) {
			t.Errorf("Redact kept the secret %q", v)
		}
	}
	if req.GetRegistry().GetPassword() != "reg-password" {
		t.Error("Redact changed its argument")
	}
}
