package kctl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/agent/exec"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
)

// newCluster starts one real controller in process (mTLS, Raft) and
// returns the admin's credentials file.
func newCluster(t *testing.T) string {
	t.Helper()
	tc := controllertest.NewCluster(t, 1)
	return filepath.Join(tc.Nodes[0].Dir, "admin.kctl.yaml")
}

// appRuntime is an agent runtime that carries every operation out at once
// and remembers the app versions it booted, newest first, which it reports
// to ListVersions (what `kctl rollback` lists).
type appRuntime struct {
	mu       sync.Mutex
	versions []string
	// ops are the operations other than GatherFacts and ListVersions, in
	// order; failWith, when set, fails them with that error.
	ops      []*agentv1.Operation
	failWith string
}

var _ exec.Runtime = (*appRuntime)(nil)

func (r *appRuntime) Do(_ context.Context, op *agentv1.Operation) (*agentv1.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch o := op.GetOp().(type) {
	case *agentv1.Operation_GatherFacts:
		return &agentv1.Result{Ok: true, Facts: agent.BasicFacts()}, nil
	case *agentv1.Operation_BootApp:
		img := o.BootApp.GetContainer().GetImage()
		v := img[strings.LastIndex(img, ":")+1:]
		r.versions = append([]string{v}, slices.DeleteFunc(r.versions, func(x string) bool { return x == v })...)
	case *agentv1.Operation_ListVersions:
		return &agentv1.Result{Ok: true, Versions: slices.Clone(r.versions)}, nil
	}
	r.ops = append(r.ops, op)
	if r.failWith != "" {
		return &agentv1.Result{Error: r.failWith}, nil
	}
	return &agentv1.Result{Ok: true}, nil
}

// take returns the operations recorded since the last take.
func (r *appRuntime) take() []*agentv1.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

func (r *appRuntime) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failWith = msg
}

// kctlJSON runs kctl and decodes its JSON output into v.
func kctlJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("kctl %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("kctl %s = %q: %v", strings.Join(args, " "), out, err)
	}
}

// wantErr fails t unless kctl args fails with an error containing want.
func wantErr(t *testing.T, want string, args ...string) {
	t.Helper()
	out, err := run(t, args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("kctl %s = %q, %v; want an error containing %q", strings.Join(args, " "), out, err, want)
	}
}

// wantOut fails t unless kctl args succeeds with output containing each of
// want.
func wantOut(t *testing.T, args []string, want ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("kctl %s: %v", strings.Join(args, " "), err)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("kctl %s = %q, want it to contain %q", strings.Join(args, " "), out, w)
		}
	}
	return out
}

// TestRun_ArgumentValidation: commands refuse bad arguments and flags with a
// clear error before asking any controller (the credentials do not exist).
func TestRun_ArgumentValidation(t *testing.T) {
	writeProject(t)
	none := filepath.Join(t.TempDir(), "none.yaml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploys", "show"}, "accepts 1 arg(s), received 0"},
		{[]string{"deploys", "show", "a", "b"}, "accepts 1 arg(s), received 2"},
		{[]string{"deploys", "show", "x", "-o", "yaml"}, `-o must be table or json, not "yaml"`},
		{[]string{"deploys", "-o", "yaml"}, `-o must be table or json, not "yaml"`},
		{[]string{"deploys", "watch"}, "accepts 1 arg(s), received 0"},
		{[]string{"deploys", "cancel"}, "accepts 1 arg(s), received 0"},
		{[]string{"deploys", "extra"}, `unknown command "extra"`},
		{[]string{"agents", "-o", "csv"}, `-o must be table or json, not "csv"`},
		{[]string{"agents", "describe", "web-1", "-o", "csv"}, `-o must be table or json, not "csv"`},
		{[]string{"agents", "describe"}, "accepts 1 arg(s), received 0"},
		{[]string{"agents", "ping"}, "accepts 1 arg(s), received 0"},
		{[]string{"agents", "remove"}, "accepts 1 arg(s), received 0"},
		{[]string{"operators", "remove"}, "accepts 1 arg(s), received 0"},
		{[]string{"cluster", "remove"}, "accepts 1 arg(s), received 0"},
		{[]string{"operators", "-o", "xml"}, `-o must be table or json, not "xml"`},
		{[]string{"audit", "-o", "xml"}, `-o must be table, json or jsonl, not "xml"`},
		{[]string{"audit", "--since", "soon"}, `--since "soon" is neither a duration (24h) nor an RFC 3339 time`},
		{[]string{"token", "list", "-o", "xml"}, `-o must be table or json, not "xml"`},
		{[]string{"token", "revoke"}, "accepts 1 arg(s), received 0"},
		{[]string{"token", "create", "--role", "operator"}, "an operator token needs --name"},
		{[]string{"token", "create", "--role", "root"}, "--role must be controller, agent or operator"},
		{[]string{"rollback", "v1", "v2"}, "accepts at most 1 arg(s), received 2"},
		{[]string{"lock", "status", "extra"}, `unknown command "extra"`},
		{[]string{"lock", "status", "-c", "config/missing.yml"}, "config/missing.yml"},
		{[]string{"prune", "all", "x"}, `unknown command "x"`},
		{[]string{"login", "--controller", "127.0.0.1:1", "--token", "nope"}, "copy the whole token"},
		{[]string{"agents"}, "kctl login"},
	} {
		wantErr(t, tc.want, append([]string{"--credentials", none}, tc.args...)...)
	}
}

// TestRun_LockCommands: lock status, acquire and release against a real
// controller, keyed by the project's service.
func TestRun_LockCommands(t *testing.T) {
	creds := newCluster(t)
	enrollWith(t, creds, "web-1", true, &appRuntime{})
	writeProject(t)
	k := func(args ...string) []string { return append([]string{"--credentials", creds}, args...) }
	wantOut(t, k("lock", "status"), "There is no deploy lock")
	wantOut(t, k("lock", "acquire", "-m", "db migration"), "Acquired the deploy lock of app")
	wantOut(t, k("lock", "status"), "admin", "db migration")
	wantErr(t, "deploy lock already in place: locked by admin", k("lock", "acquire", "-m", "again")...)
	wantErr(t, "deploy lock already in place: locked by admin", k("deploy", "--skip-push", "--version", "v1", "-H")...)
	wantOut(t, k("lock", "release"), "Released the deploy lock of app")
	wantOut(t, k("lock", "status"), "There is no deploy lock")
	wantErr(t, "There is no deploy lock", k("lock", "release")...)
}

// TestRun_DeploysRollbackAndAudit: two deploys to an agent whose runtime
// succeeds at once, then every view of them: deploys (table, JSON), deploys
// show (plain, JSON), watch, cancel of an ended deploy, rollback's listing
// and refusal, a rollback, and audit with its filters.
func TestRun_DeploysRollbackAndAudit(t *testing.T) {
	creds := newCluster(t)
	enrollWith(t, creds, "web-1", true, &appRuntime{})
	writeProject(t)
	k := func(args ...string) []string { return append([]string{"--credentials", creds}, args...) }
	for _, v := range []string{"v1", "v2"} {
		wantOut(t, k("deploy", "--skip-push", "--version", v, "-H"), "boot app-web-"+v, "Finished all in")
	}

	var deploys []map[string]string
	kctlJSON(t, &deploys, k("deploys", "-o", "json")...)
	if len(deploys) != 2 {
		t.Fatalf("deploys -o json = %v, want two deploys", deploys)
	}
	for i, v := range []string{"v2", "v1"} { // newest first
		d := deploys[i]
		if d["version"] != v || d["state"] != "succeeded" || d["command"] != "deploy" || d["service"] != "app" || d["operator"] != "admin" || d["error"] != "" {
			t.Errorf("deploys -o json [%d] = %v, want a succeeded deploy of app %s by admin", i, d, v)
		}
		if _, err := time.Parse(time.RFC3339, d["created"]); err != nil {
			t.Errorf("deploys -o json [%d] created = %q: %v", i, d["created"], err)
		}
	}
	id := deploys[0]["id"]
	table := wantOut(t, k("deploys"), "ID", "COMMAND", "SERVICE", "VERSION", "STATE", "OPERATOR", id)
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 {
		t.Errorf("deploys = %q, want a header and two rows", table)
	}

	var show struct {
		ID, State, Version, Finished string
		Steps                        []struct{ ID, Phase, Host, Role, Action, State, Error, Started, Finished string }
	}
	kctlJSON(t, &show, k("deploys", "show", id, "-o", "json")...)
	if show.ID != id || show.State != "succeeded" || show.Version != "v2" || show.Finished == "" || len(show.Steps) == 0 {
		t.Fatalf("deploys show -o json = %+v, want deploy %s of v2 succeeded with its steps", show, id)
	}
	booted := false
	for _, s := range show.Steps {
		if s.ID == "" || s.Phase == "" || s.Host != "web-1" || s.Error != "" || (s.State != "succeeded" && s.State != "skipped") {
			t.Errorf("deploys show -o json step = %+v, want an ended step on web-1", s)
		}
		if s.State == "succeeded" {
			started, err1 := time.Parse(time.RFC3339Nano, s.Started)
			finished, err2 := time.Parse(time.RFC3339Nano, s.Finished)
			if err1 != nil || err2 != nil || finished.Before(started) {
				t.Errorf("step %s times = %q → %q, want a start before the end", s.ID, s.Started, s.Finished)
			}
		}
		booted = booted || s.Action == "boot app-web-v2" && s.Role == "web"
	}
	if !booted {
		t.Errorf("deploys show -o json lacks the boot of app-web-v2: %+v", show.Steps)
	}
	wantOut(t, k("deploys", "show", id), "Deploy "+id+": deploy app version v2 by admin", "boot app-web-v2", "Summary:", "web-1", "Finished all in")
	wantErr(t, "no deploy \"nope\" (list them with `kctl deploys`)", k("deploys", "show", "nope")...)
	wantErr(t, "no deploy \"nope\" (list them with `kctl deploys`)", k("deploys", "watch", "nope")...)
	wantErr(t, "no deploy \"nope\"", k("deploys", "cancel", "nope")...)
	wantOut(t, k("deploys", "watch", id), "Finished all in")
	wantOut(t, k("deploys", "cancel", id), "Deploy "+id+": cancel requested (state succeeded)")

	wantOut(t, k("rollback"), "Versions present on every host, newest first (kctl rollback VERSION):\n  v2\n  v1\n")
	wantErr(t, "The app version 'v9' is not available as a container (use 'kctl rollback' for available versions)", k("rollback", "v9")...)
	wantOut(t, k("rollback", "v1"), "boot app-web-v1", "Finished all in")
	kctlJSON(t, &deploys, k("deploys", "-o", "json")...)
	if len(deploys) != 3 || deploys[0]["command"] != "rollback" || deploys[0]["version"] != "v1" || deploys[0]["state"] != "succeeded" {
		t.Errorf("deploys after a rollback = %v, want a succeeded rollback to v1 first", deploys)
	}
	wantOut(t, k("rollback"), "  v1\n  v2\n")

	var all []map[string]any
	kctlJSON(t, &all, k("audit", "-o", "json")...)
	// Entries written during a call (token, the agent's join, submits,
	// cancels) name the call's method, role and address; the runner's
	// entries of each step name their deploy.
	var entries []map[string]string
	for _, a := range all {
		e := map[string]string{}
		for k, v := range a {
			e[k] = fmt.Sprint(v)
		}
		if e["method"] != "" {
			if e["caller_role"] == "" || e["address"] == "" {
				t.Errorf("audit entry of a call %v, want the caller's role and address", e)
			}
			continue
		}
		entries = append(entries, e)
	}
	boots := map[string]bool{}
	for _, e := range entries {
		if e["operator"] != "admin" || e["service"] != "app" || e["deploy"] == "" {
			t.Errorf("audit entry %v, want admin's, of app, naming its deploy", e)
		}
		if strings.HasPrefix(e["action"], "boot app-web-") && e["result"] == "succeeded" && e["host"] == "web-1" && e["role"] == "web" {
			boots[e["version"]+" "+e["deploy"]] = true
		}
		if _, err := time.Parse(time.RFC3339Nano, e["time"]); err != nil {
			t.Errorf("audit time %q: %v", e["time"], err)
		}
	}
	if !boots["v2 "+id] || len(boots) != 3 {
		t.Errorf("audit boots = %v, want one per deploy (v1, v2 %s, rollback v1)", boots, id)
	}
	kctlJSON(t, &all, k("audit", "--operator", "nobody", "-o", "json")...)
	if len(all) != 0 {
		t.Errorf("audit --operator nobody = %v, want none", all)
	}
	kctlJSON(t, &all, k("audit", "--host", "web-1", "--limit", "2", "--since", "1h", "-o", "json")...)
	if len(all) != 2 || all[0]["host"] != "web-1" {
		t.Errorf("audit --host web-1 --limit 2 = %v, want two entries of web-1", all)
	}
	wantOut(t, k("audit", "--service", "app"), "TIME", "OPERATOR", "ACTION", "RESULT", "boot app-web-v2")
	wantOut(t, k("lock", "status"), "There is no deploy lock")
}

// TestRun_TokensOperatorsAgents: token create, list (table, JSON) and
// revoke; operators listed, logged in and removed; an agent listed,
// described, pinged and removed.
func TestRun_TokensOperatorsAgents(t *testing.T) {
	creds := newCluster(t)
	k := func(args ...string) []string { return append([]string{"--credentials", creds}, args...) }

	tok := strings.TrimSpace(wantOut(t, k("token", "create", "--role", "agent", "--uses", "2", "--ttl", "10m"), "KCTL1-"))
	type token struct {
		ID, Role, Name, Expires string
		OperatorRole            string `json:"operator_role"`
		UsesLeft                uint32 `json:"uses_left"`
	}
	var toks []token
	kctlJSON(t, &toks, k("token", "list", "-o", "json")...)
	if len(toks) != 1 || toks[0].Role != "agent" || toks[0].UsesLeft != 2 || toks[0].ID == "" || !strings.HasPrefix(tok, "KCTL1-") {
		t.Fatalf("token list -o json = %+v, want the agent token with 2 uses", toks)
	}
	if exp, err := time.Parse(time.RFC3339, toks[0].Expires); err != nil || time.Until(exp) < 9*time.Minute || time.Until(exp) > 11*time.Minute {
		t.Errorf("token expires %q (%v), want in 10m", toks[0].Expires, err)
	}
	wantOut(t, k("token", "list"), "ID", "ROLE", "USES LEFT", toks[0].ID)
	wantOut(t, k("token", "revoke", toks[0].ID))
	kctlJSON(t, &toks, k("token", "list", "-o", "json")...)
	if len(toks) != 0 {
		t.Errorf("token list after revoke = %+v, want none", toks)
	}

	// An operator logs in, is listed with their role, and is removed.
	opTok := strings.TrimSpace(wantOut(t, k("token", "create", "--role", "operator", "--name", "bob", "--operator-role", "deployer")))
	kctlJSON(t, &toks, k("token", "list", "-o", "json")...)
	if len(toks) != 1 || toks[0].Role != "operator" || toks[0].Name != "bob" || toks[0].OperatorRole != "deployer" {
		t.Errorf("token list -o json = %+v, want bob's deployer token", toks)
	}
	var st struct {
		Nodes []struct{ Address string } `json:"nodes"`
	}
	kctlJSON(t, &st, k("cluster", "status", "-o", "json")...)
	bob := filepath.Join(t.TempDir(), "bob.yaml")
	wantOut(t, []string{"--credentials", bob, "login", "--controller", st.Nodes[0].Address, "--token", opTok})
	var ops []struct{ Name, Role, Created string }
	kctlJSON(t, &ops, k("operators", "-o", "json")...)
	roles := map[string]string{}
	for _, o := range ops {
		roles[o.Name] = o.Role
	}
	if roles["admin"] != "admin" || roles["bob"] != "deployer" || len(ops) != 2 {
		t.Errorf("operators -o json = %+v, want admin and bob (deployer)", ops)
	}
	wantOut(t, []string{"--credentials", bob, "agents"}, "NAME")
	wantErr(t, "permission denied", "--credentials", bob, "operators", "remove", "admin")
	wantOut(t, k("operators", "remove", "bob"), "removed operator bob")
	wantErr(t, "revoked", "--credentials", bob, "agents")

	// An agent: listed, described, pinged, removed.
	enrollWith(t, creds, "web-1", true, &appRuntime{})
	var agents []struct{ Name, Status, Controller, Version string }
	kctlJSON(t, &agents, k("agents", "-o", "json")...)
	if len(agents) != 1 || agents[0].Name != "web-1" || agents[0].Status != "connected" || agents[0].Controller != "c1" {
		t.Errorf("agents -o json = %+v, want web-1 connected to c1", agents)
	}
	var d struct {
		Name, Status, Hostname, OS, Arch string
		Containers                       []any
	}
	kctlJSON(t, &d, k("agents", "describe", "web-1", "-o", "json")...)
	facts := agent.BasicFacts()
	if d.Name != "web-1" || d.Status != "connected" || d.Hostname != facts.GetHostname() || d.OS != facts.GetOs() || d.Arch != facts.GetArch() || d.Containers == nil {
		t.Errorf("agents describe -o json = %+v, want web-1's facts %v", d, facts)
	}
	wantOut(t, k("agents", "describe", "web-1"), "Name:       web-1", "Status:     connected", "Arch:       "+facts.GetArch(), "Containers: 0")
	wantErr(t, `no agent "web-9" (kctl agents)`, k("agents", "describe", "web-9")...)
	wantOut(t, k("agents", "ping", "web-1", "--payload", "hi", "--wait", "20s"), "web-1 answered command ", " via c1 in ")
	wantOut(t, k("agents", "remove", "web-1"), "removed agent web-1")
	wantErr(t, `no agent "web-1" (kctl agents)`, k("agents", "ping", "web-1", "--wait", "2s")...)
	wantErr(t, `no controller "c9" (kctl cluster status)`, k("cluster", "remove", "c9")...)
	wantErr(t, `no token "nope" (kctl token list)`, k("token", "revoke", "nope")...)
	wantErr(t, `no operator "nobody" (kctl operators)`, k("operators", "remove", "nobody")...)
	wantErr(t, `no agent "nobody" (kctl agents)`, k("agents", "remove", "nobody")...)
}

// TestRun_PruneAndPullOnHosts: prune all, containers and images, and build
// pull send Kamal's operation to each host and report each host's outcome;
// a host's failure fails the command and names the host and its error.
func TestRun_PruneAndPullOnHosts(t *testing.T) {
	creds := newCluster(t)
	rt := &appRuntime{}
	enrollWith(t, creds, "web-1", true, rt)
	writeProject(t)
	k := func(args ...string) []string { return append([]string{"--credentials", creds}, args...) }
	for _, tc := range []struct {
		args               []string
		containers, images bool
		retain             uint32
	}{
		{[]string{"prune", "all"}, true, true, 5},
		{[]string{"prune", "containers", "--retain", "2"}, true, false, 2},
		{[]string{"prune", "images"}, false, true, 5},
	} {
		wantOut(t, k(tc.args...), "web-1", "pruned")
		ops := rt.take()
		if len(ops) != 1 || ops[0].GetPrune() == nil {
			t.Fatalf("kctl %v sent %v, want one Prune", tc.args, ops)
		}
		got := ops[0].GetPrune()
		if got.GetService() != "app" || got.GetContainers() != tc.containers || got.GetImages() != tc.images || got.GetRetain() != tc.retain ||
			!slices.Equal(got.GetKeepTags(), []string{"latest"}) || got.GetRepository() != "localhost:5555/team/app" {
			t.Errorf("kctl %v sent %v, want app's prune (containers %v, images %v, retain %d, keeping latest)", tc.args, got, tc.containers, tc.images, tc.retain)
		}
	}
	wantOut(t, k("build", "pull", "--version", "v3"), "web-1", "pulled localhost:5555/team/app:v3")
	if ops := rt.take(); len(ops) != 1 || ops[0].GetPullImage().GetImage() != "localhost:5555/team/app:v3" || ops[0].GetPullImage().GetService() != "app" {
		t.Errorf("build pull sent %v, want one pull of localhost:5555/team/app:v3 checked against service app", ops)
	}
	rt.fail("disk full")
	wantErr(t, "failed on 1 of 1 hosts:\n  web-1: disk full", k("prune", "all")...)
	wantErr(t, "failed on 1 of 1 hosts:\n  web-1: disk full", k("build", "pull", "--version", "v3")...)
	wantErr(t, "unknown flag: --retain", k("prune", "images", "--retain", "1")...)
}
