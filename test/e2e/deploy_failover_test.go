package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"google.golang.org/protobuf/encoding/protodelim"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// slowStart makes the app take d to start listening, so a deploy spends
// that long inside its boot step.
func (p *project) slowStart(t *testing.T, d string) {
	t.Helper()
	path := filepath.Join(p.Dir, "config", "deploy.yml")
	yml, err := os.ReadFile(path)
	must(t, err)
	must(t, os.WriteFile(path, []byte(strings.Replace(string(yml), "GREETING: hello", "GREETING: hello\n    START_DELAY: "+d, 1)), 0o644))
}

// deployState reads a deploy's state with `kctl deploys -o json`.
func (e *env) deployState(dir, id string) (string, error) {
	out, err := e.kctlIn(dir, "deploys", "-o", "json")
	if err != nil {
		return "", err
	}
	var list []map[string]string
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return "", err
	}
	for _, d := range list {
		if d["id"] == id {
			return d["state"], nil
		}
	}
	return "", fmt.Errorf("no deploy %s", id)
}

// containersNamed counts containers (any state) whose name starts with name.
func containersNamed(t *testing.T, name string) []string {
	t.Helper()
	cli := testenv.Docker(t)
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", "^/?"+regexp.QuoteMeta(name)))})
	must(t, err)
	var out []string
	for _, c := range list {
		out = append(out, strings.TrimPrefix(c.Names[0], "/"))
	}
	return out
}

// TestE2E_DeploySurvivesLeaderKill: the leader is killed (SIGKILL) while a
// deploy is inside its boot step; leadership moves, the new leader resumes
// the deploy to success, and each step ran once: one container per version
// on the engine, and one command id per step in the agent's journal (a step
// re-sent under a new id would run twice and show two).
func TestE2E_DeploySurvivesLeaderKill(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(3)
	e.startAgent(cs)
	p := newProject(t, e)
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy v1: %v\n%s", err, out)
	}
	journal := filepath.Join(e.dir, e.agent, "journal.bin")
	before := map[string]bool{}
	for _, cid := range journalIDs(t, journal) {
		before[cid] = true
	}
	p.slowStart(t, "4s")
	id, err := e.kctlIn(p.Dir, "deploy", "--version", "v2", "--detach")
	if err != nil {
		t.Fatal(err)
	}
	id = strings.TrimSpace(id)
	// Kill the leader while the deploy is inside its boot step.
	testenv.WaitFor(t, 60*time.Second, func() error {
		if len(containersNamed(t, engineName(e.agent, p.service+"-web-v2"))) == 0 {
			return fmt.Errorf("no %s-web-v2 yet", p.service)
		}
		return nil
	})
	show := e.deployShow(p, id)
	if show.State != "running" || len(show.unfinished()) == 0 {
		t.Fatalf("before the kill: deploy %s is %s with unfinished steps %v; want running with a step left", id, show.State, show.unfinished())
	}
	st, err := e.status()
	must(t, err)
	var leader *ctl
	for _, c := range cs {
		if c.name == st.Leader {
			leader = c
		}
	}
	if leader == nil {
		t.Fatalf("no leader in %+v", st)
	}
	leader.p.Kill()
	killedAt := time.Now().Truncate(time.Millisecond)
	testenv.WaitFor(t, 60*time.Second, func() error { // leadership moved
		st, err := e.status()
		if err != nil {
			return err
		}
		if st.Leader == "" || st.Leader == leader.name {
			return fmt.Errorf("leader %q, want one other than the killed %s", st.Leader, leader.name)
		}
		return nil
	})
	testenv.WaitFor(t, 90*time.Second, func() error { // the deploy succeeds after the leader was killed
		s, err := e.deployState(p.Dir, id)
		if err != nil {
			return err
		}
		if s != "succeeded" {
			return fmt.Errorf("deploy %s is %s", id, s)
		}
		return nil
	})
	// The kill hit the deploy in flight: a step ended after it.
	show = e.deployShow(p, id)
	if last := show.lastFinished(t); last.Before(killedAt) {
		t.Errorf("the deploy's last step ended at %s, before the leader was killed at %s: the kill missed the deploy", last.Format(time.RFC3339Nano), killedAt.Format(time.RFC3339Nano))
	}
	if got, err := p.get("/"); err != nil || got != "v2\n" {
		t.Errorf("GET / = %q, %v; want v2", got, err)
	}
	for _, v := range []string{"v1", "v2"} {
		if names := containersNamed(t, engineName(e.agent, p.service+"-web-"+v)); len(names) != 1 {
			t.Errorf("containers for web %s = %v, want exactly one", v, names)
		}
	}
	// One command id per step that ran on the agent.
	ran := 0
	for _, s := range show.Steps {
		if s.Host == e.agent && (s.State == "succeeded" || s.State == "failed") {
			ran++
		}
	}
	var during []string
	seen := map[string]bool{}
	for _, cid := range journalIDs(t, journal) {
		if !before[cid] && !seen[cid] {
			during = append(during, cid)
			seen[cid] = true
		}
	}
	if len(during) != ran {
		t.Errorf("the agent ran %d commands for the v2 deploy's %d steps, want one per step (a step re-sent under a new id?): %v", len(during), ran, during)
	}
	e.wantNoLock(p, "after the deploy")
}

// deployShow is `kctl deploys show ID -o json`.
type deployShow struct {
	ID, State string
	Steps     []struct{ ID, Host, Action, State, Started, Finished string }
}

func (e *env) deployShow(p *project, id string) deployShow {
	e.t.Helper()
	var d deployShow
	out, err := e.kctlIn(p.Dir, "deploys", "show", id, "-o", "json")
	must(e.t, err)
	must(e.t, json.Unmarshal([]byte(out), &d))
	if d.ID != id || len(d.Steps) == 0 {
		e.t.Fatalf("deploys show %s -o json = %s", id, out)
	}
	return d
}

// unfinished lists the steps not yet ended ("<action> <state>").
func (d deployShow) unfinished() []string {
	var out []string
	for _, s := range d.Steps {
		if s.Finished == "" {
			out = append(out, s.Action+" "+s.State)
		}
	}
	return out
}

// journalIDs lists the command ids an agent journaled, in order: the agent
// journals each command id once, when it has run it.
func journalIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	var ids []string
	for r := bufio.NewReader(bytes.NewReader(b)); ; {
		var cr agentv1.CommandResult
		if protodelim.UnmarshalFrom(r, &cr) != nil {
			return ids
		}
		ids = append(ids, cr.GetId())
	}
}

// lastFinished is the latest end of a step.
func (d deployShow) lastFinished(t *testing.T) time.Time {
	t.Helper()
	var last time.Time
	for _, s := range d.Steps {
		if s.Finished == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, s.Finished)
		must(t, err)
		if ts.After(last) {
			last = ts
		}
	}
	return last
}

func TestE2E_KctlKilledMidDeploy(t *testing.T) {
	e, p := newDeployEnv(t)
	p.slowStart(t, "3s")
	cmd := exec.Command(filepath.Join(e.bin, "kctl"), "deploy", "--version", "v1")
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), "KCTL_CREDENTIALS="+e.creds)
	deploy := testenv.Start(t, "kctl-deploy", cmd)
	var id string
	testenv.WaitFor(t, 60*time.Second, func() error { // the deploy is running
		out, err := e.kctlIn(p.Dir, "deploys", "-o", "json")
		if err != nil {
			return err
		}
		var list []map[string]string
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) == 0 || list[0]["state"] != "running" {
			return fmt.Errorf("deploys: %s", out)
		}
		id = list[0]["id"]
		return nil
	})
	deploy.Kill() // the operator's laptop goes away
	out, err := e.kctlIn(p.Dir, "deploys", "watch", id)
	if err != nil {
		t.Fatalf("deploys watch after kctl died: %v", err)
	}
	if !strings.Contains(out, "Finished all in") {
		t.Errorf("watch output lacks the summary:\n%s", out)
	}
	if got, _ := p.get("/"); got != "v1\n" {
		t.Errorf("GET / = %q, want v1", got)
	}
	e.wantNoLock(p, "after the deploy")
}

func TestE2E_TwoOperatorsOneLock(t *testing.T) {
	e, p := newDeployEnv(t)
	// alice is a deployer with her own key and credentials file.
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "operator", "--name", "alice", "--operator-role", "deployer"))
	aliceCreds := filepath.Join(e.dir, "alice.yaml")
	if out, err := e.runBin(30*time.Second, "kctl", "--credentials", aliceCreds, "login", "--controller", e.ctls[0].api, "--token", tok); err != nil {
		t.Fatalf("alice login: %v\n%s", err, out)
	}
	if out, err := e.kctlIn(p.Dir, "build", "push", "--version", "v1"); err != nil {
		t.Fatalf("build push: %v\n%s", err, out)
	}
	p.slowStart(t, "3s")
	type result struct {
		who string
		out string
		err error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i, who := range []string{"admin", "alice"} {
		wg.Go(func() {
			creds := e.creds
			if who == "alice" {
				creds = aliceCreds
			}
			cmd := exec.Command(filepath.Join(e.bin, "kctl"), "--credentials", creds, "deploy", "--skip-push", "--version", "v1")
			cmd.Dir = p.Dir
			out, err := cmd.CombinedOutput()
			results[i] = result{who, string(out), err}
		})
	}
	wg.Wait()
	var won, lost []result
	for _, r := range results {
		if r.err == nil {
			won = append(won, r)
		} else {
			lost = append(lost, r)
		}
	}
	if len(won) != 1 || len(lost) != 1 {
		t.Fatalf("outcomes: %d succeeded, %d failed; want exactly one each:\n%+v", len(won), len(lost), results)
	}
	if !strings.Contains(lost[0].out, "deploy lock already in place: locked by "+won[0].who) {
		t.Errorf("%s's error does not name %s as the holder:\n%s", lost[0].who, won[0].who, lost[0].out)
	}
	out, err := e.kctlIn(p.Dir, "audit", "--operator", won[0].who, "-o", "json")
	if err != nil || !strings.Contains(out, "boot "+p.service+"-web-v1") {
		t.Errorf("audit for %s lacks the boot: %v\n%s", won[0].who, err, out)
	}
}

// inspectEnv returns a container's environment.
func inspectEnv(t *testing.T, name string) map[string]string {
	t.Helper()
	in, err := testenv.Docker(t).ContainerInspect(context.Background(), name)
	must(t, err)
	env := map[string]string{}
	for _, kv := range in.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}
