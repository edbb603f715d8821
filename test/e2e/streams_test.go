package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"gopkg.in/yaml.v3"

	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// streamsEnv is two controllers, two agents that dial the first one only,
// one running app container per agent (created directly on the engine, as
// a deploy would leave it) and a kctl whose credentials name the second
// controller only: every stream is relayed between controllers.
type streamsEnv struct {
	*env
	cli     *client.Client
	cs      []*ctl
	project string
	service string
	// creds2 reaches the second controller only.
	creds2 string
	// app is each agent's app container.
	app map[string]string
}

const streamsYML = `service: %[1]s
image: kctl-e2e/%[1]s
servers:
  web:
    - %[2]s
    - %[3]s
registry:
  server: localhost:5000
  username: user
  password:
    - KAMAL_REGISTRY_PASSWORD
builder:
  arch: amd64
`

func newStreamsEnv(t *testing.T) *streamsEnv { return newStreamsEnvArgs(t, nil) }

// newStreamsEnvArgs is newStreamsEnv with extra `agent run` flags for the
// i-th agent.
func newStreamsEnvArgs(t *testing.T, agentArgs [][]string) *streamsEnv {
	e := newEnv(t)
	e.agentArgs = agentArgs
	s := &streamsEnv{env: e, cs: e.startCluster(2), cli: dockertest.Client(t), app: map[string]string{}}
	e.startAgents(s.cs[:1], 2)
	prefix := dockertest.Prefix(t)
	s.service = "st" + prefix
	image := "localhost:5000/kctl-e2e/" + s.service + ":latest"
	bin := dockertest.BuildBinary(t, "./test/app")
	dockertest.BuildImage(t, s.cli, image, bin, "/app", []string{`ENTRYPOINT ["/app"]`}, map[string]string{"service": s.service})
	ctx := context.Background()
	for _, h := range e.hosts {
		dockertest.CleanupContainers(t, s.cli, h+".", nil, nil)
		name := engineName(h, s.service+"-web-v1")
		cfg := &container.Config{Image: image, Env: []string{"KAMAL_VERSION=v1"}, Labels: map[string]string{
			"service": s.service, "role": "web", "destination": "", "kctl.agent": h,
		}}
		c, err := s.cli.ContainerCreate(ctx, cfg, nil, nil, nil, name)
		must(t, err)
		must(t, s.cli.ContainerStart(ctx, c.ID, container.StartOptions{}))
		s.app[h] = name
		// The env file a deploy leaves on the host: one-off execs read it.
		envFile := filepath.Join(e.dir, h, "host", ".kamal", "apps", s.service, "env", "roles", "web.env")
		must(t, os.MkdirAll(filepath.Dir(envFile), 0o700))
		must(t, os.WriteFile(envFile, []byte("APP_SECRET=from-the-host\n"), 0o600))
	}
	s.project = filepath.Join(e.dir, "app")
	must(t, os.MkdirAll(filepath.Join(s.project, "config"), 0o755))
	must(t, os.MkdirAll(filepath.Join(s.project, ".kamal"), 0o755))
	must(t, os.WriteFile(filepath.Join(s.project, "config", "deploy.yml"), []byte(fmt.Sprintf(streamsYML, s.service, e.hosts[0], e.hosts[1])), 0o644))
	must(t, os.WriteFile(filepath.Join(s.project, ".kamal", "secrets"), []byte("KAMAL_REGISTRY_PASSWORD=x\n"), 0o600))
	s.creds2 = s.credsFor(t, e.creds, s.cs[1].api)
	return s
}

// credsFor copies a credentials file, naming only controller addr.
func (s *streamsEnv) credsFor(t *testing.T, path, addr string) string {
	b, err := os.ReadFile(path)
	must(t, err)
	var f map[string]any
	must(t, yaml.Unmarshal(b, &f))
	f["controllers"] = []string{addr}
	out, err := yaml.Marshal(f)
	must(t, err)
	p := filepath.Join(s.dir, "creds-"+strings.NewReplacer(":", "_", "/", "_").Replace(addr)+".yaml")
	must(t, os.WriteFile(p, out, 0o600))
	return p
}

// command is kctl in the project directory with credentials creds.
func (s *streamsEnv) command(creds string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, "kctl"), args...)
	cmd.Dir = s.project
	cmd.Env = append(os.Environ(), "KCTL_CREDENTIALS="+creds)
	return cmd
}

// run runs kctl and returns stdout, stderr and the exit code.
func (s *streamsEnv) run(creds string, args ...string) (string, string, int) {
	cmd := s.command(creds, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// lines collects a reader's lines for polling.
type lines struct {
	mu  sync.Mutex
	all []string
}

func collect(r io.Reader) *lines {
	l := &lines{}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.all = append(l.all, sc.Text())
			l.mu.Unlock()
		}
	}()
	return l
}

// has reports whether a line has every part.
func (l *lines) has(parts ...string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.all {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return nil
	}
	return fmt.Errorf("no line with %q in %d lines", parts, len(l.all))
}

func TestE2E_StreamsThroughAnotherController(t *testing.T) {
	s := newStreamsEnv(t)
	h1, h2 := s.hosts[0], s.hosts[1]

	// Logs: every host at once, grouped under Kamal's header.
	waitFor(t, 20*time.Second, "app logs from both hosts", func() error {
		out, errOut, code := s.run(s.creds2, "app", "logs")
		for _, h := range []string{h1, h2} {
			if code != 0 || !strings.Contains(out, "App Host: "+h+"\n") {
				return fmt.Errorf("exit %d: %s%s", code, out, errOut)
			}
		}
		if strings.Count(out, "listening on :80") != 2 {
			return fmt.Errorf("want both apps' first line: %s", out)
		}
		return nil
	})

	// Follow: both hosts, merged, each line marked; a new line arrives;
	// Ctrl-C ends it.
	follow := s.command(s.creds2, "app", "logs", "-f")
	stdout, err := follow.StdoutPipe()
	must(t, err)
	must(t, follow.Start())
	got := collect(stdout)
	waitFor(t, 20*time.Second, "followed lines of both hosts", func() error {
		if err := got.has(h1+" | ", "listening"); err != nil {
			return err
		}
		return got.has(h2+" | ", "listening")
	})
	mark := "mark-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	_, err = execIn(context.Background(), s.cli, s.app[h2], "/app", "log", mark)
	must(t, err)
	waitFor(t, 10*time.Second, "a line written after the start", func() error { return got.has(h2+" | ", mark) })
	must(t, follow.Process.Signal(syscall.SIGINT))
	waitExit(t, follow, 5*time.Second, 0)

	// Exec in the running containers of every host, grouped per host.
	out, errOut, code := s.run(s.creds2, "app", "exec", "--reuse", "/app echo hi from exec")
	if code != 0 || strings.Count(out, "hi from exec") != 2 || !strings.Contains(out, "App Host: "+h1) {
		t.Fatalf("app exec --reuse = %d\n%s%s", code, out, errOut)
	}
	// One-off containers carry the role's env from the host's env file
	// (no secret travels) and the -e values.
	out, errOut, code = s.run(s.creds2, "app", "exec", "-h", h1, "--raw", "-e", "EXTRA:1", "env", "APP_SECRET", "EXTRA")
	if code != 0 || strings.TrimSpace(out) != "from-the-host 1" {
		t.Fatalf("app exec (one-off) = %d\n%s%s", code, out, errOut)
	}
	// The exit status of a single host becomes kctl's.
	if _, errOut, code := s.run(s.creds2, "app", "exec", "--reuse", "-h", h1, "/app exit 3"); code != 3 {
		t.Fatalf("app exec exit 3 = %d: %s", code, errOut)
	}

	// A viewer reads logs but may not exec.
	tok := strings.TrimSpace(s.mustKctl("token", "create", "--role", "operator", "--operator-role", "viewer", "--name", "viewer1"))
	viewer := filepath.Join(s.dir, "viewer.yaml")
	if _, err := s.kctl("--credentials", viewer, "login", "--controller", s.cs[1].api, "--token", tok); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := s.run(viewer, "app", "logs", "-h", h1); code != 0 || !strings.Contains(out, "listening") {
		t.Fatalf("viewer app logs = %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := s.run(viewer, "app", "exec", "--reuse", "/app echo no"); code == 0 || !strings.Contains(strings.ToLower(errOut), "permission") {
		t.Fatalf("viewer app exec = %d: %s, want a permission error", code, errOut)
	}

	// The audit has each exec with its exit status, never the -e values.
	audit := s.mustKctl("audit", "-o", "json")
	if !strings.Contains(audit, "exec finished") || !strings.Contains(audit, "exit 3") || !strings.Contains(audit, "/app exit 3") {
		t.Fatalf("audit lacks the exec:\n%s", audit)
	}
	if !strings.Contains(audit, "env: EXTRA") || strings.Contains(audit, "EXTRA:1") {
		t.Fatalf("audit must name -e keys only:\n%s", audit)
	}
}

// waitExit waits for cmd to exit with code within d.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration, code int) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		got := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != code {
			t.Fatalf("%s exited %d, want %d", strings.Join(cmd.Args, " "), got, code)
		}
	case <-time.After(d):
		_ = cmd.Process.Kill()
		t.Fatalf("%s still running after %s", strings.Join(cmd.Args, " "), d)
	}
}

// tty runs kctl under a pseudo-terminal.
type tty struct {
	cmd *exec.Cmd
	f   *os.File
	mu  sync.Mutex
	out strings.Builder
}

func (s *streamsEnv) startTTY(t *testing.T, args ...string) *tty {
	tt := &tty{cmd: s.command(s.creds2, args...)}
	f, err := pty.StartWithSize(tt.cmd, &pty.Winsize{Rows: 30, Cols: 100})
	must(t, err)
	tt.f = f
	t.Cleanup(func() {
		_ = tt.cmd.Process.Kill()
		f.Close()
	})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			tt.mu.Lock()
			tt.out.Write(buf[:n])
			tt.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return tt
}

func (tt *tty) contains(s string) error {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if !strings.Contains(tt.out.String(), s) {
		return fmt.Errorf("no %q in %q", s, tt.out.String())
	}
	return nil
}

func TestE2E_ExecInteractiveTTY(t *testing.T) {
	s := newStreamsEnv(t)
	h1 := s.hosts[0]

	sh := s.startTTY(t, "app", "exec", "-i", "--reuse", "-h", h1, "/app shell")
	waitFor(t, 20*time.Second, "the prompt", func() error { return sh.contains("$ ") })
	_, err := sh.f.WriteString("echo hel lo\r")
	must(t, err)
	waitFor(t, 10*time.Second, "the echo and the output", func() error {
		if err := sh.contains("echo hel lo"); err != nil {
			return err
		}
		return sh.contains("hel lo\r\n$ ")
	})
	_, err = sh.f.WriteString("winsize\r")
	must(t, err)
	waitFor(t, 10*time.Second, "the first size", func() error { return sh.contains("30x100") })
	must(t, pty.Setsize(sh.f, &pty.Winsize{Rows: 41, Cols: 121}))
	waitFor(t, 10*time.Second, "the new size", func() error {
		_, _ = sh.f.WriteString("winsize\r")
		time.Sleep(200 * time.Millisecond) // let the line come back before asking again
		return sh.contains("41x121")
	})
	_, err = sh.f.WriteString("exit 3\r")
	must(t, err)
	waitExit(t, sh.cmd, 10*time.Second, 3)

	// kctl killed mid-session: the exec's process goes away.
	sleeper := s.startTTY(t, "app", "exec", "-i", "--reuse", "-h", h1, "/app sleep 777s")
	waitFor(t, 20*time.Second, "the exec running", func() error { return s.processIn(s.app[h1], "777s", true) })
	_ = sleeper.cmd.Process.Kill()
	waitFor(t, 5*time.Second, "the exec killed", func() error { return s.processIn(s.app[h1], "777s", false) })

	// kctl killed mid-session in a one-off container: it is removed.
	oneOff := s.startTTY(t, "app", "exec", "-i", "-h", h1, "sleep 778s")
	prefix := engineName(h1, s.service+"-web-exec-")
	waitFor(t, 20*time.Second, "the one-off container", func() error { return s.containerNamed(prefix, true) })
	_ = oneOff.cmd.Process.Kill()
	waitFor(t, 5*time.Second, "the one-off container removed", func() error { return s.containerNamed(prefix, false) })
}

// processIn checks whether a process whose command line has s runs in the
// container.
func (s *streamsEnv) processIn(name, sub string, want bool) error {
	top, err := s.cli.ContainerTop(context.Background(), name, nil)
	if err != nil {
		return err
	}
	found := false
	for _, p := range top.Processes {
		if strings.Contains(strings.Join(p, " "), sub) {
			found = true
		}
	}
	if found != want {
		return fmt.Errorf("process %q running = %v, want %v: %v", sub, found, want, top.Processes)
	}
	return nil
}

// containerNamed checks whether a container whose name starts with prefix
// exists.
func (s *streamsEnv) containerNamed(prefix string, want bool) error {
	l, err := s.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", prefix))})
	if err != nil {
		return err
	}
	if (len(l) > 0) != want {
		return fmt.Errorf("containers %q: %d, want present=%v", prefix, len(l), want)
	}
	return nil
}

// rssMiB is a process's resident set size.
func rssMiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// A 256 MiB exec through two controllers to a kctl that reads slowly:
// backpressure reaches the container, and neither controller nor the agent
// holds the backlog.
func TestE2E_ExecCatFlatMemory(t *testing.T) {
	s := newStreamsEnv(t)
	h1 := s.hosts[0]
	pids := map[string]int{"c1 (holds the agent)": s.cs[0].p.Pid(), "c2 (kctl's)": s.cs[1].p.Pid()}
	for _, p := range s.procs {
		if p.Name == h1 {
			pids["agent "+h1] = p.Pid()
		}
	}
	const size = 256 << 20
	cmd := s.command(s.creds2, "app", "exec", "-i", "--reuse", "-h", h1, fmt.Sprintf("/app zero %d", size))
	stdin, err := cmd.StdinPipe() // kept open: the command does not read it
	must(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())

	peak := map[string]int{}
	sample := func() {
		for name, pid := range pids {
			if m, err := rssMiB(pid); err == nil && m > peak[name] {
				peak[name] = m
			}
		}
	}
	var total int64
	buf := make([]byte, 16<<10)
	slowUntil := time.Now().Add(3 * time.Second)
	for time.Now().Before(slowUntil) { // ~3 MB/s: a slow terminal
		n, err := stdout.Read(buf)
		total += int64(n)
		must(t, err)
		sample()
		time.Sleep(5 * time.Millisecond) // the slow reader itself
	}
	done := make(chan struct{})
	slowTotal, fastStart := total, time.Now()
	go func() {
		defer close(done)
		n, _ := io.CopyBuffer(io.Discard, stdout, make([]byte, 256<<10))
		total += n
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			sample()
		}
	}
	fast := time.Since(fastStart)
	waitExit(t, cmd, 30*time.Second, 0)
	if total != size {
		t.Fatalf("read %d bytes, want %d", total, size)
	}
	t.Logf("after the slow reader: %d MiB in %s (%.0f MB/s)", (total-slowTotal)>>20, fast.Round(time.Millisecond), float64(total-slowTotal)/fast.Seconds()/1e6)
	const bound = 160 // MiB: far below the 256 MiB a backlog would take
	for name, m := range peak {
		t.Logf("peak RSS %s: %d MiB", name, m)
		if m > bound {
			t.Errorf("peak RSS of %s = %d MiB, want <= %d", name, m, bound)
		}
	}
}

// waitFor is testenv.WaitFor naming what it waits for.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testenv.WaitFor(t, timeout, func() error {
		if err := cond(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}
