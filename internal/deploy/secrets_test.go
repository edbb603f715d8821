package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/schema"
)

// canaryRequest is a deploy of app to web on h1 and h2 with a distinct
// canary secret in every kind of secret field a role carries: registry
// credentials, secret env, container files and proxy files (TLS key).
func canaryRequest() (*deployv1.Request, []string) {
	req := request("app", map[string][]string{"web": {"h1", "h2"}}, "web")
	req.Registry = &specv1.RegistryAuth{Server: "reg", Username: "canary-user-7f3a", Password: "canary-password-7f3a"}
	secrets := []string{"canary-user-7f3a", "canary-password-7f3a", "canary-tls-key-7f3a"}
	req.Roles[0].Proxy.Files = []*specv1.File{{Path: "tls.key", Content: []byte("canary-tls-key-7f3a")}}
	for _, hc := range req.Roles[0].GetHosts() {
		env, file := "canary-env-"+hc.GetHost(), "canary-file-"+hc.GetHost()
		hc.Container.SecretEnv = []*specv1.KeyValue{{Key: "DB_PASSWORD", Value: env}}
		hc.Container.Files = []*specv1.File{{Path: "/etc/app/key", Content: []byte(file)}}
		secrets = append(secrets, env, file)
	}
	return req, secrets
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

// The deploy record, its steps, the lock and the audit never hold a
// secret, nor do Get, List, Watch and Audit responses; the deploy-secrets
// record holds them while the deploy runs and is gone after: then no table
// holds any (the raw store scanned, every table and key). The agent
// receives the values.
func TestSecrets_OnlyTheSecretsRecordHoldsThemAndOnlyWhileRunning(t *testing.T) {
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
	if got := holding(h.store.View(), secrets, schema.Secrets.Name()); len(got) > 0 {
		t.Errorf("while the deploy runs, tables other than %s hold secrets: %v", schema.Secrets.Name(), got)
	}
	if !schema.Secrets.Has(h.store, id) {
		t.Errorf("no %s record while the deploy runs", schema.Secrets.Name())
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
