package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// The packages install into an empty root with dpkg, their units pass
// systemd-analyze verify, and the units' own ExecStart lines (with the
// paths moved into that root, as this machine boots no systemd) start a
// controller that resumes after a restart and an agent that enrols through
// an HTTPS proxy and receives a deploy.
func TestE2E_PackageInstallEnrolDeploy(t *testing.T) {
	e := newEnv(t)
	for _, c := range []string{"dpkg", "systemd-analyze", "systemd-sysusers"} {
		testenv.Command(t, c)
	}
	root := installPackages(t, e.dir)

	// The controller, from its unit, twice: the same flags resume.
	api, raft := testenv.FreeAddr(t), testenv.FreeAddr(t)
	writeEnvFile(t, root, "controller.env", map[string]string{
		"KCTL_NAME": "c1", "KCTL_LISTEN": api, "KCTL_RAFT_LISTEN": raft,
		"KCTL_CONTROLLER_ARGS": "--init --heartbeat-interval 1s",
	})
	e.bin = filepath.Join(root, "usr", "bin") // kctl from the package
	e.creds = filepath.Join(root, "var", "lib", "kctl-controller", "admin.kctl.yaml")
	c1 := startUnit(t, root, "kctl-controller")
	waitLeader := func() {
		testenv.WaitFor(t, 30*time.Second, func() error {
			st, err := e.status()
			if err == nil && st.Leader != "c1" {
				err = fmt.Errorf("leader %q", st.Leader)
			}
			return err
		})
	}
	waitLeader()
	if err := c1.Stop(); err != nil {
		t.Fatalf("controller exit after SIGTERM = %v", err)
	}
	startUnit(t, root, "kctl-controller")
	waitLeader()

	// The agent, from its unit, behind a CONNECT proxy: it knows the
	// controller only by a name that the proxy alone resolves.
	proxy := startConnectProxy(t, api)
	e.hosts = []string{"web-" + dockertest.Prefix(t)}
	e.agent = e.hosts[0]
	// kctl agents add prints the one command to run on the server; the
	// agent is pending until it connects.
	add := e.mustKctl("agents", "add", e.agent, "--ttl", "10m")
	if as, err := e.agents(); err != nil || as[e.agent].Status != "pending" {
		t.Fatalf("after agents add: %+v, %v; want %s pending", as, err, e.agent)
	}
	runSetupLine(t, root, add)
	env := readEnvFile(t, filepath.Join(root, "etc/kctl/agent.env"))
	if env["KCTL_NAME"] != e.agent || env["KCTL_CONTROLLERS"] != api || !strings.HasPrefix(env["KCTL_TOKEN"], "KCTL1-") {
		t.Fatalf("agent.env after setup: %v", env)
	}
	writeEnvFile(t, root, "agent.env", map[string]string{
		"KCTL_CONTROLLERS": proxy.name, "KCTL_AGENT_ARGS": "--shared-engine",
		"HTTPS_PROXY": "http://" + proxy.addr, "NO_PROXY": "",
	})
	startUnit(t, root, "kctl-agent")
	testenv.WaitFor(t, 30*time.Second, func() error {
		as, err := e.agents()
		if err == nil && as[e.agent].Status != "connected" {
			err = fmt.Errorf("agent %+v", as[e.agent])
		}
		return err
	})
	if proxy.connects() == 0 {
		t.Fatal("the agent enrolled without going through HTTPS_PROXY")
	}

	p := newProject(t, e)
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	if got, err := p.get("/"); err != nil || got != "v1\n" {
		t.Fatalf("GET / = %q, %v; want v1", got, err)
	}
}

// runSetupLine runs the `echo TOKEN | sudo kctl-agent setup ...` line that
// kctl agents add printed, with the packaged binary and env file in root
// and without starting systemd.
func runSetupLine(t *testing.T, root, printed string) {
	t.Helper()
	var line string
	for _, l := range strings.Split(printed, "\n") {
		if strings.Contains(l, "kctl-agent setup") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatalf("agents add printed no setup command:\n%s", printed)
	}
	line = strings.Replace(line, "sudo kctl-agent", filepath.Join(root, "usr/bin/kctl-agent"), 1)
	line += " --no-start --env-file " + filepath.Join(root, "etc/kctl/agent.env")
	if out, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
}

// installPackages builds the .deb packages for this machine's architecture
// (make package's script) and installs them with dpkg into a new root under
// dir, running their maintainer scripts there. It checks what the packages
// promise: the service users, 0600 config files, units systemd accepts.
func installPackages(t *testing.T, dir string) string {
	t.Helper()
	dist := filepath.Join(dir, "dist")
	cmd := exec.Command("./scripts/package.sh")
	cmd.Dir = testenv.ModuleRoot(t)
	cmd.Env = append(os.Environ(), "DIST="+dist, "ARCHES="+runtime.GOARCH, "VERSION="+testenv.TestVersion())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	if len(debs) != 3 {
		t.Fatalf("packages built: %v, want controller, agent and kctl", debs)
	}
	root := filepath.Join(dir, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc", "usr/lib/systemd"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		must(t, os.WriteFile(filepath.Join(root, f), nil, 0o644))
	}
	// A Debian system with systemd and Docker: its units and its users.
	cp := exec.Command("cp", "-r", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/"))
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\ndocker:x:999:\n"), 0o644))
	args := append([]string{"--root=" + root, "--force-script-chrootless", "--log=/dev/null", "-i"}, debs...)
	if out, err := exec.Command("dpkg", args...).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	for _, u := range []string{"kctl-controller", "kctl-agent"} {
		if !regexp.MustCompile(`(?m)^` + u + `:`).Match(passwd) {
			t.Errorf("no user %s after install:\n%s", u, passwd)
		}
	}
	if !regexp.MustCompile(`(?m)^docker:.*\bkctl-agent\b`).Match(group) {
		t.Errorf("kctl-agent is not in group docker:\n%s", group)
	}
	for _, f := range []string{"etc/kctl/agent.env", "etc/kctl/controller.env"} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, fi, err)
		}
	}
	verify := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, "kctl-controller.service", "kctl-agent.service")
	if out, err := verify.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	return root
}

// writeEnvFile fills in a packaged /etc/kctl file: each KEY=VALUE line of
// set replaces the package's line for KEY, or is appended.
func writeEnvFile(t *testing.T, root, name string, set map[string]string) {
	t.Helper()
	path := filepath.Join(root, "etc", "kctl", name)
	b, err := os.ReadFile(path)
	must(t, err)
	var lines []string
	done := map[string]bool{}
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		k, _, _ := strings.Cut(l, "=")
		if v, ok := set[k]; ok && !strings.HasPrefix(l, "#") {
			l, done[k] = k+"="+v, true
		}
		lines = append(lines, l)
	}
	for k, v := range set {
		if !done[k] {
			lines = append(lines, k+"="+v)
		}
	}
	must(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
}

// startUnit runs a packaged unit's ExecStart as systemd would (the
// EnvironmentFile's variables set and expanded: ${X} as one word, $X split
// into words; the StateDirectory made), with /usr/bin and /var/lib moved
// into root.
func startUnit(t *testing.T, root, unit string) *testenv.Proc {
	t.Helper()
	keys := unitKeys(t, filepath.Join(root, "usr/lib/systemd/system", unit+".service"))
	env := readEnvFile(t, filepath.Join(root, strings.TrimPrefix(keys["EnvironmentFile"], "/")))
	must(t, os.MkdirAll(filepath.Join(root, "var/lib", keys["StateDirectory"]), 0o700))
	var argv []string
	for _, w := range strings.Fields(keys["ExecStart"]) {
		switch {
		case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
			argv = append(argv, env[w[2:len(w)-1]])
		case strings.HasPrefix(w, "$"):
			argv = append(argv, strings.Fields(env[w[1:]])...)
		default:
			argv = append(argv, w)
		}
	}
	for i, w := range argv {
		if strings.HasPrefix(w, "/usr/bin/") || strings.HasPrefix(w, "/var/lib/") {
			argv[i] = filepath.Join(root, w)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = root
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return testenv.Start(t, unit, cmd)
}

// unitKeys reads a unit file's Key=Value lines (the last of each key wins).
func unitKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	keys := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			keys[k] = v
		}
	}
	return keys
}

// readEnvFile reads an EnvironmentFile: KEY=VALUE lines, # comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

// connectProxy is an HTTP CONNECT proxy on loopback that sends every tunnel
// to one address, whatever name the client asked for.
type connectProxy struct {
	addr, name string
	mu         sync.Mutex
	n          int
}

func (p *connectProxy) connects() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// startConnectProxy starts a proxy that resolves the name it returns
// (unknown to DNS) to target.
func startConnectProxy(t *testing.T, target string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	_, port, _ := net.SplitHostPort(target)
	p := &connectProxy{addr: ln.Addr().String(), name: "kctl-controller.invalid:" + port}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c, target) })
		}
	})
	return p
}

func (p *connectProxy) serve(c net.Conn, target string) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect || req.Host != p.name {
		fmt.Fprint(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	fmt.Fprint(c, "HTTP/1.1 200 OK\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	<-done
}

// make images builds FROM-scratch images of controller and agent; the
// controller's, run as its unprivileged user, initializes a cluster in its
// volume.
func TestE2E_Images(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	testenv.Docker(t)
	prefix := "kctl-e2e-img-" + dockertest.Prefix(t)
	cmd := exec.Command("./scripts/images.sh")
	cmd.Dir = testenv.ModuleRoot(t)
	cmd.Env = append(os.Environ(), "IMAGE_PREFIX="+prefix, "TAG=test", "VERSION="+testenv.TestVersion())
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		for _, img := range []string{"controller", "agent"} {
			_ = exec.Command("docker", "rmi", prefix+"/"+img+":test", prefix+"/"+img+":latest").Run()
		}
	})
	if err != nil {
		t.Fatalf("scripts/images.sh: %v\n%s", err, out)
	}
	if out, err := exec.Command("docker", "run", "--rm", prefix+"/agent:test", "version").CombinedOutput(); err != nil || !strings.Contains(string(out), testenv.TestVersion()) {
		t.Fatalf("agent image version: %v %s", err, out)
	}
	name := prefix + "-c1"
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", "-v", name).Run() })
	run := exec.Command("docker", "run", "-d", "--name", name, "--network", "none", prefix+"/controller:test",
		"run", "--resume", "--name", "c1", "--data-dir", "/var/lib/kctl-controller", "--listen", "127.0.0.1:7443", "--raft-listen", "127.0.0.1:7444", "--init")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("docker run controller: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		logs, err := exec.Command("docker", "logs", name).CombinedOutput()
		if err == nil && !strings.Contains(string(logs), "controller serving") {
			err = fmt.Errorf("controller not serving yet:\n%s", logs)
		}
		return err
	})
}
