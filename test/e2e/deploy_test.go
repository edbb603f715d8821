package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// project is a Kamal project on disk that deploys the test app through a
// real registry and the kamal-proxy stand-in.
type project struct {
	testenv.Project
	service  string
	httpPort int
	reg      testenv.Registry
}

// e2eEnv is the env section of every e2e deploy.yml.
const e2eEnv = `  clear:
    GREETING: hello
  secret:
    - APP_SECRET
`

// newProject writes the project and builds what it needs: the test app
// binary in its build context and the proxy stand-in image. Its deploy.yml
// runs role web behind the proxy (published on a free port) and role
// worker with cmd serve, both on the env's first agent.
func newProject(t *testing.T, e *env) *project {
	t.Helper()
	return newProjectWith(t, e, func(*testenv.DeployYML) {})
}

// newProjectWith is newProject with adjust changing the deploy.yml first.
func newProjectWith(t *testing.T, e *env, adjust func(*testenv.DeployYML)) *project {
	t.Helper()
	cli := testenv.Docker(t)
	reg := testenv.StartRegistry(t)
	prefix := dockertest.Prefix(t)
	proxyRepo := "kctl-e2e/proxy-" + prefix
	dockertest.BuildProxyImage(t, cli, proxyRepo)
	service := "e2e" + strings.ReplaceAll(prefix, "-", "")
	yml := testenv.DeployYML{
		Service: service, Image: "kctl-e2e/" + service,
		Roles:     []testenv.Role{{Name: "web", Hosts: []string{e.agent}}, {Name: "worker", Hosts: []string{e.agent}, Cmd: "serve"}},
		ProxyRepo: proxyRepo, HTTPPort: testenv.FreePort(t), HTTPSPort: testenv.FreePort(t),
		Registry: reg, BuilderContext: ".", Env: e2eEnv,
	}
	adjust(&yml)
	secrets := fmt.Sprintf("KAMAL_REGISTRY_PASSWORD=%s\nAPP_SECRET=s3cret-value-%s\n", reg.Password, prefix)
	tp := testenv.NewProject(t, filepath.Join(e.dir, "app"), yml.String(), secrets)
	p := &project{Project: tp, service: service, httpPort: yml.HTTPPort, reg: reg}
	// The build context: the test app binary and a FROM-scratch Dockerfile.
	app, err := os.ReadFile(testenv.BuildBinary(t, "./test/app"))
	must(t, err)
	p.Write(t, "app", string(app), 0o755)
	p.Write(t, "Dockerfile", "FROM scratch\nCOPY app /app\nEXPOSE 80\nENTRYPOINT [\"/app\"]\n", 0o644)
	dockertest.CleanupContainers(t, cli, p.service, nil, nil)
	// kctl build and the agents tag the app on this engine (v1, latest, …).
	t.Cleanup(func() { dockertest.RemoveImages(cli, reg.Addr+"/kctl-e2e/"+service) })
	for _, h := range e.hosts {
		// --shared-engine names containers "<agent>.<Kamal's name>".
		dockertest.CleanupContainers(t, cli, h+".", nil, nil)
		dockertest.CleanupContainers(t, cli, "kamal-proxy-"+h, nil, []string{"kamal-proxy-config-" + h})
	}
	return p
}

// newDeployEnv is the usual deploy test's setup: one controller, one agent
// and a project.
func newDeployEnv(t *testing.T) (*env, *project) {
	e := newEnv(t)
	e.startAgent(e.startCluster(1))
	return e, newProject(t, e)
}

// wantNoLock fails the test if the project's deploy lock is held.
func (e *env) wantNoLock(p *project, when string) {
	e.t.Helper()
	if out, _ := e.kctlIn(p.Dir, "lock", "status"); !strings.Contains(out, "There is no deploy lock") {
		e.t.Errorf("lock status %s = %q, want no lock", when, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// kctlIn runs kctl in the project directory with the env's credentials.
func (e *env) kctlIn(dir string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(e.bin, "kctl"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KCTL_CREDENTIALS="+e.creds)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kctl %s: %v\n%s\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// startAgent enrolls and starts the test's agent (named uniquely, as it
// shares the engine with other tests' agents).
func (e *env) startAgent(controllers []*ctl) {
	e.t.Helper()
	e.startAgents(controllers, 1)
}

// startAgents enrolls and starts n agents on the shared engine, each with
// --shared-engine (unless e.production) and its own name ("web-<prefix>" for one agent,
// "web<i>-<prefix>" for several): e.agent is the first, e.hosts all of them
// in order.
func (e *env) startAgents(controllers []*ctl, n int) []string {
	e.t.Helper()
	prefix := dockertest.Prefix(e.t)
	e.hosts = nil
	for i := range n {
		name := "web-" + prefix
		if n > 1 {
			name = fmt.Sprintf("web%d-%s", i+1, prefix)
		}
		e.hosts = append(e.hosts, name)
	}
	e.agent = e.hosts[0]
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "agent", "--ttl", "10m", "--uses", fmt.Sprint(n)))
	var addrs []string
	for _, c := range controllers {
		addrs = append(addrs, c.api)
	}
	for i, name := range e.hosts {
		args := []string{"run", "--name", name, "--data-dir", filepath.Join(e.dir, name), "--controller", strings.Join(addrs, ","), "--token", tok}
		if !e.production {
			args = append(args, "--shared-engine")
		}
		if i < len(e.agentArgs) {
			args = append(args, e.agentArgs[i]...)
		}
		e.start(name, "agent", args...)
	}
	testenv.WaitFor(e.t, 30*time.Second, func() error { // every agent connected
		as, err := e.agents()
		if err != nil {
			return err
		}
		for _, name := range e.hosts {
			if as[name].Status != "connected" {
				return fmt.Errorf("%s: %+v", name, as[name])
			}
		}
		return nil
	})
	return e.hosts
}

// engineName is the name a --shared-engine agent gives a container Kamal
// names name.
func engineName(agent, name string) string { return agent + "." + name }

func (p *project) get(path string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.httpPort, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}

// loop requests / until stopped and counts failures.
type loop struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       chan struct{}
	wg         sync.WaitGroup
}

func (p *project) startLoop() *loop {
	l := &loop{stop: make(chan struct{})}
	l.wg.Go(func() {
		for i := 0; i < 100000; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			if _, err := p.get("/"); err != nil {
				l.failed.Add(1)
				l.lastErr.Store(err.Error())
			} else {
				l.ok.Add(1)
			}
		}
	})
	return l
}

func (l *loop) finish() (ok, failed int64, last any) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.lastErr.Load()
}

// projectSecret is the value of key in the project's .kamal/secrets.
func projectSecret(t *testing.T, p *project, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Dir, ".kamal", "secrets"))
	must(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s in .kamal/secrets", key)
	return ""
}

func TestE2E_DeployRedeployRollbackAudit(t *testing.T) {
	e, p := newDeployEnv(t)
	hooksLog := filepath.Join(e.dir, "hooks.log")
	os.MkdirAll(filepath.Join(p.Dir, ".kamal", "hooks"), 0o755)
	// Mid-deploy (pre-app-boot runs as the boot group starts, the deploy's
	// records and commands in Raft), the hook greps every controller's
	// data dir, raft.db included, for the secrets.
	appSecret := projectSecret(t, p, "APP_SECRET")
	midScan, midHits := filepath.Join(e.dir, "mid-deploy.scanned"), filepath.Join(e.dir, "mid-deploy.hits")
	var ctlDirs []string
	for _, c := range e.ctls {
		ctlDirs = append(ctlDirs, c.dir)
	}
	for _, h := range []string{"pre-connect", "pre-build", "pre-deploy", "pre-app-boot", "post-app-boot", "post-deploy"} {
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $KAMAL_COMMAND $KAMAL_VERSION secret=${APP_SECRET:+set}\" >> %s\n", h, hooksLog)
		if h == "pre-app-boot" {
			script += fmt.Sprintf("grep -rlaF -e %s -e %s %s >> %s\nfind %s -type f | wc -l >> %s\n",
				appSecret, p.reg.Password, strings.Join(ctlDirs, " "), midHits, strings.Join(ctlDirs, " "), midScan)
		}
		must(t, os.WriteFile(filepath.Join(p.Dir, ".kamal", "hooks", h), []byte(script), 0o755))
	}

	out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1")
	if err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	outputs := map[string]string{"deploy v1": out} // every output, checked for secrets at the end
	hooksRan, _ := os.ReadFile(hooksLog)
	wantHooks := "pre-connect deploy v1 secret=set\npre-build deploy v1 secret=\npre-deploy deploy v1 secret=set\n" +
		"pre-app-boot deploy v1 secret=\npost-app-boot deploy v1 secret=\npost-deploy deploy v1 secret=set\n"
	if string(hooksRan) != wantHooks {
		t.Errorf("hooks ran:\n%s\nwant, in Kamal's order with secrets only where Kamal passes them:\n%s", hooksRan, wantHooks)
	}
	must(t, os.RemoveAll(filepath.Join(p.Dir, ".kamal", "hooks")))
	if scanned, _ := os.ReadFile(midScan); len(strings.TrimSpace(string(scanned))) == 0 || strings.TrimSpace(string(scanned)) == "0" {
		t.Errorf("the mid-deploy scan read no controller file (%q)", scanned)
	}
	if hits, _ := os.ReadFile(midHits); len(hits) > 0 {
		t.Errorf("mid-deploy, controller files hold a secret:\n%s", hits)
	}
	if !strings.Contains(out, "Finished all in") {
		t.Errorf("deploy output lacks the summary:\n%s", out)
	}
	if got, err := p.get("/"); err != nil || got != "v1\n" {
		t.Fatalf("GET / after v1 = %q, %v; want v1", got, err)
	}
	secret, err := p.get("/env/APP_SECRET")
	secret = strings.TrimSpace(secret) // test/app ends it with a newline
	if err != nil || !strings.HasPrefix(secret, "s3cret-value-") {
		t.Fatalf("GET /env/APP_SECRET = %q, %v; want the secret from .kamal/secrets", secret, err)
	}
	if got, _ := p.get("/env/GREETING"); got != "hello\n" {
		t.Errorf("clear env GREETING = %q, want hello", got)
	}

	l := p.startLoop()
	out, err = e.kctlIn(p.Dir, "deploy", "--version", "v2")
	ok, failed, last := l.finish()
	if err != nil {
		t.Fatalf("deploy v2: %v", err)
	}
	outputs["deploy v2"] = out
	if failed != 0 || ok == 0 {
		t.Errorf("request loop across v1→v2: %d ok, %d failed (last: %v); want zero failures", ok, failed, last)
	}
	if got, _ := p.get("/"); got != "v2\n" {
		t.Fatalf("GET / after v2 = %q, want v2", got)
	}

	out, err = e.kctlIn(p.Dir, "rollback")
	if err != nil || !strings.Contains(out, "v1") {
		t.Fatalf("rollback (list) = %q, %v; want v1 listed", out, err)
	}
	outputs["rollback"] = out
	if _, err := e.kctlIn(p.Dir, "rollback", "v9"); err == nil || !strings.Contains(err.Error(), "is not available as a container") {
		t.Errorf("rollback v9 error = %v, want Kamal's refusal", err)
	}
	if out, err := e.kctlIn(p.Dir, "rollback", "v1"); err != nil {
		t.Fatalf("rollback v1: %v\n%s", err, out)
	} else {
		outputs["rollback v1"] = out
	}
	if got, _ := p.get("/"); got != "v1\n" {
		t.Fatalf("GET / after rollback = %q, want v1", got)
	}

	out, err = e.kctlIn(p.Dir, "audit", "--service", p.service, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	outputs["audit -o json"] = out
	var entries []map[string]string
	must(t, json.Unmarshal([]byte(out), &entries))
	seen := map[string]bool{}
	for _, en := range entries {
		if en["operator"] != "admin" {
			t.Errorf("audit entry operator = %q, want admin: %v", en["operator"], en)
		}
		if strings.HasPrefix(en["action"], "boot ") && en["result"] == "succeeded" {
			seen[en["version"]] = true
		}
	}
	for _, v := range []string{"v1", "v2"} {
		if !seen[v] {
			t.Errorf("audit lacks a successful boot of %s: %s", v, out)
		}
	}
	e.wantNoLock(p, "after deploys")
	e.wantNoSecrets(t, []string{secret, p.reg.Password}, e.everyListing(p, outputs))
}

func TestE2E_UnhealthyVersionKeepsOldServing(t *testing.T) {
	e, p := newDeployEnv(t)
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy v1: %v\n%s", err, out)
	}
	// v2 never becomes healthy.
	yml, _ := os.ReadFile(filepath.Join(p.Dir, "config", "deploy.yml"))
	must(t, os.WriteFile(filepath.Join(p.Dir, "config", "deploy.yml"), []byte(strings.Replace(string(yml), "GREETING: hello", "GREETING: hello\n    UNHEALTHY: \"1\"", 1)), 0o644))
	out, err := e.kctlIn(p.Dir, "deploy", "--version", "v2")
	if err == nil {
		t.Fatalf("deploy of an unhealthy v2 succeeded:\n%s", out)
	}
	if !strings.Contains(err.Error(), "healthy") {
		t.Errorf("deploy error lacks the health failure:\n%v", err)
	}
	if got, gerr := p.get("/"); gerr != nil || got != "v1\n" {
		t.Errorf("GET / after failed v2 = %q, %v; want v1 still serving", got, gerr)
	}
	e.wantNoLock(p, "after a failed deploy")
}

func TestE2E_DetachWatchAndLockContention(t *testing.T) {
	e, p := newDeployEnv(t)
	id, err := e.kctlIn(p.Dir, "deploy", "--version", "v1", "--detach")
	if err != nil {
		t.Fatalf("deploy --detach: %v", err)
	}
	id = strings.TrimSpace(id)
	// A second operator's deploy is refused while the first holds the lock.
	_, err = e.kctlIn(p.Dir, "deploy", "--version", "v1", "--skip-push")
	if err == nil || !strings.Contains(err.Error(), "deploy lock already in place: locked by admin") {
		t.Errorf("concurrent deploy error = %v, want the lock holder named", err)
	}
	out, err := e.kctlIn(p.Dir, "deploys", "watch", id)
	if err != nil {
		t.Fatalf("deploys watch %s: %v\n%s", id, err, out)
	}
	if got, _ := p.get("/"); got != "v1\n" {
		t.Errorf("GET / = %q, want v1", got)
	}
	out, _ = e.kctlIn(p.Dir, "deploys", "-o", "json")
	if !strings.Contains(out, id) || !strings.Contains(out, `"succeeded"`) {
		t.Errorf("deploys -o json = %s", out)
	}
}
