package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/schema"
)

// canaryRequest is a deploy of app to web on h1 and h2 with a distinct
// canary secret in every kind of secret field a role carries: registry
// credentials, secret env, container files and proxy files (TLS key).
func canaryRequest() (*deployv1.Request, []string) {
	req := plainRequest("app", map[string][]string{"web": {"h1", "h2"}}, "web")
	req.Registry = &specv1.RegistryAuth{Server: "reg", Username: "canary-user-7f3a", Password: "canary-password-7f3a"}
	secrets := []string{"canary-user-7f3a", "canary-password-7f3a", "canary-tls-key-7f3a"}
	req.Roles[0].Proxy.Files = []*specv1.File{{Path: "tls.key", Content: []byte("canary-tls-key-7f3a")}}
	for _, hc := range req.Roles[0].GetHosts() {
		env, file := "canary-env-"+hc.GetHost(), "canary-file-"+hc.GetHost()
		hc.Container.SecretEnv = []*specv1.KeyValue{{Key: "DB_PASSWORD", Value: env}}
		hc.Container.Files = []*specv1.File{{Path: "/etc/app/key", Content: []byte(file)}}
		secrets = append(secrets, env, file)
	}
	return sealed(req), secrets
}

// containsAny reports which of secrets m holds.
func containsAny(m proto.Message, secrets []string) []string {
	b, _ := proto.Marshal(m)
	var out []string
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			out = append(out, s)
		}
	}
	return out
}

// No table ever holds a secret value, while the deploy runs or after (the
// raw store scanned, every table and key, the deploy-secrets record and
// the agents' commands included: they hold only ciphertext sealed to each
// agent), nor do Get, List, Watch and Audit responses; the deploy-secrets
// record (the sealed bundles) is gone when the deploy ends. Each agent
// opens the values.
func TestSecrets_NoTableEverHoldsThemAndTheSealedRecordOnlyWhileRunning(t *testing.T) {
	agents := newFakeAgents("h1", "h2")
	agents.hold["h2"] = true
	h := newMemHarness(t, agents)
	h.start()
	ctx := context.Background()
	req, secrets := canaryRequest()
	svc := h.service("alice")
	resp, err := svc.Submit(ctx, &deployv1.SubmitRequest{Request: req})
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	if got := containsAny(resp, secrets); len(got) > 0 {
		t.Errorf("the Submit response holds %v", got)
	}
	id := resp.GetDeploy().GetId()
	watch := &watchStream{ctx: ctx}
	watched := make(chan error, 1)
	go func() { watched <- svc.Watch(&deployv1.WatchRequest{Id: id}, watch) }()

	h.advanceUntil(t, 0, "h2 holding a step", func() error {
		agents.mu.Lock()
		defer agents.mu.Unlock()
		if len(agents.pending["h2"]) == 0 {
			return errors.New("nothing pending on h2")
		}
		return nil
	})
	if got := holding(h.store.View(), secrets); len(got) > 0 {
		t.Errorf("while the deploy runs, the store holds secrets: %v", got)
	}
	if rec, _, ok := schema.Secrets.Get(h.store, id); !ok || len(rec.GetSealedSecrets()) != 2 {
		t.Errorf("while the deploy runs, %s holds %d sealed bundles, want one per host (2)", schema.Secrets.Name(), len(rec.GetSealedSecrets()))
	}
	agents.release("h2")
	got := h.waitDeploy(t, id)
	if got.GetDeploy().GetState() != deployv1.State_STATE_SUCCEEDED {
		t.Fatalf("deploy = %v (%s), want succeeded", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
	if err := <-watched; err != nil {
		t.Fatalf("Watch = %v", err)
	}
	if all := holding(h.store.View(), secrets); len(all) > 0 {
		t.Errorf("after the deploy ended the store holds secrets: %v", all)
	}
	if schema.Secrets.Has(h.store, id) {
		t.Errorf("the %s record outlives the deploy", schema.Secrets.Name())
	}
	if rec, _, _ := schema.Deploys.Get(h.store, id); len(rec.GetRequest().GetSealedSecrets()) > 0 {
		t.Errorf("the deploy record keeps the sealed bundles after the deploy")
	}

	list, err := svc.List(ctx, &deployv1.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := svc.Audit(ctx, &deployv1.AuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	responses := map[string]proto.Message{"Get": got, "List": list, "Audit": audit}
	for i, w := range watch.sent {
		responses[fmt.Sprintf("Watch #%d", i)] = w
	}
	if len(watch.sent) == 0 || len(audit.GetEntries()) == 0 {
		t.Fatalf("Watch sent %d responses and Audit %d entries: nothing to check", len(watch.sent), len(audit.GetEntries()))
	}
	for name, m := range responses {
		if got := containsAny(m, secrets); len(got) > 0 {
			t.Errorf("%s response holds %v", name, got)
		}
	}

	// The agents received every value.
	agents.mu.Lock()
	defer agents.mu.Unlock()
	var sent []string
	for _, op := range agents.sent {
		sent = append(sent, containsAny(op, secrets)...)
	}
	for _, s := range secrets {
		if !strings.Contains(strings.Join(sent, " "), s) {
			t.Errorf("no operation sent to an agent carried %q", s)
		}
	}
}

// A request whose secret fields hold plaintext, or a sealed request missing
// a host's bundle, is refused before anything is written: controllers never
// store a plaintext secret.
func TestSecrets_PlaintextRefusedBeforeAnythingIsWritten(t *testing.T) {
	h := newMemHarness(t, newFakeAgents("h1", "h2"))
	h.start()
	ctx := context.Background()
	plain := plainRequest("app", map[string][]string{"web": {"h1", "h2"}}, "web")
	missing := request("app", map[string][]string{"web": {"h1", "h2"}}, "web")
	delete(missing.SealedSecrets, "h2")
	for name, req := range map[string]*deployv1.Request{"plaintext": plain, "no bundle for h2": missing} {
		_, err := h.service("alice").Submit(ctx, &deployv1.SubmitRequest{Request: req})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("Submit(%s) = %v, want InvalidArgument", name, err)
		}
		if got := holding(h.store.View(), []string{"hunter2", "registry-password"}); len(got) > 0 {
			t.Errorf("after Submit(%s) the store holds %v", name, got)
		}
		if n := len(schema.Deploys.Raw(h.store.View(), "")); n != 0 {
			t.Errorf("after Submit(%s) %d deploys are recorded, want 0", name, n)
		}
	}
}

// A rollback after a deploy has ended (its sealed record deleted) runs on
// secrets kctl seals afresh to each agent: the agents open the values of
// the rollback's request, and no table holds them before or after.
func TestSecrets_RollbackIsSealedAfresh(t *testing.T) {
	agents := newFakeAgents("h1", "h2")
	h := newMemHarness(t, agents)
	h.start()
	ctx := context.Background()
	svc := h.service("alice")
	req, secrets := canaryRequest()
	resp, err := svc.Submit(ctx, &deployv1.SubmitRequest{Request: req})
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	if got := h.waitDeploy(t, resp.GetDeploy().GetId()); got.GetDeploy().GetState() != deployv1.State_STATE_SUCCEEDED {
		t.Fatalf("deploy = %v", got.GetDeploy().GetState())
	}
	if n := len(schema.Secrets.Raw(h.store.View(), "")); n != 0 {
		t.Fatalf("%d sealed records after the deploy, want 0", n)
	}

	rb, _ := canaryRequest()
	rb.Command, rb.SkipPull, rb.SkipProxyBoot = "rollback", true, true
	agents.mu.Lock()
	clear(agents.sent)
	agents.mu.Unlock()
	resp, err = svc.Submit(ctx, &deployv1.SubmitRequest{Request: rb})
	if err != nil {
		t.Fatalf("Submit(rollback) = %v", err)
	}
	if got := h.waitDeploy(t, resp.GetDeploy().GetId()); got.GetDeploy().GetState() != deployv1.State_STATE_SUCCEEDED {
		t.Fatalf("rollback = %v (%s)", got.GetDeploy().GetState(), got.GetDeploy().GetError())
	}
	agents.mu.Lock()
	var received []string
	for _, op := range agents.sent {
		received = append(received, containsAny(op, secrets)...)
	}
	agents.mu.Unlock()
	for _, s := range []string{"canary-env-h1", "canary-env-h2"} {
		if !strings.Contains(strings.Join(received, " "), s) {
			t.Errorf("the rollback's boot never delivered %q", s)
		}
	}
	if all := holding(h.store.View(), secrets); len(all) > 0 {
		t.Errorf("the store holds secrets: %v", all)
	}
}
