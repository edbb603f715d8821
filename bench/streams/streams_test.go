// Package streams benchmarks operator streams through two controllers
// against the docker CLI floor measured in the same run: kctl reaches c2,
// the agent's session is on c1, so every byte crosses kctl → c2 → c1 →
// agent → engine (docs/streams.md).
//
//	go test -run '^$' -bench Streams -benchtime 1x ./bench/streams/
//
// BENCH_EXEC_MIB sets the exec cat size (default 1024); BENCH_STREAMS=exec,logs
// runs those parts only (exec, keys, logs, follow).
package streams

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/testenv"
)

const deployYML = `service: %[1]s
image: kctl-bench/%[1]s
servers:
  web:
    - %[2]s
registry:
  server: localhost:5000
  username: user
  password:
    - KAMAL_REGISTRY_PASSWORD
builder:
  arch: amd64
`

// env is two controllers, one agent on c1, the app container, and a
// project whose credentials name c2 only.
type env struct {
	b       *testing.B
	bin     string
	work    string
	project string
	kenv    []string
	ctr     string
	// procs are c1, c2 and the agent, for their CPU time.
	procs map[string]*testenv.Proc
}

func run(env []string, dir, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return string(out), nil
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func newEnv(b *testing.B) *env {
	cli := testenv.Docker(b)
	e := &env{b: b, bin: testenv.Binaries(b), work: b.TempDir()}
	ctl := filepath.Join(e.bin, "controller")
	kctl := filepath.Join(e.bin, "kctl")
	c1api, c2api := testenv.FreeAddr(b), testenv.FreeAddr(b)
	c1 := filepath.Join(e.work, "c1")
	e.procs = map[string]*testenv.Proc{}
	e.procs["c1"] = testenv.Start(b, "c1", exec.Command(ctl, "run", "--name", "c1", "--data-dir", c1, "--listen", c1api, "--raft-listen", testenv.FreeAddr(b), "--init", "--heartbeat-interval", "1s"))
	creds := filepath.Join(c1, "admin.kctl.yaml")
	testenv.WaitFor(b, 30*time.Second, func() error { _, err := os.Stat(creds); return err })
	admin := []string{"KCTL_CREDENTIALS=" + creds}
	token := func(role string) string {
		var tok string
		testenv.WaitFor(b, 30*time.Second, func() error {
			out, err := run(admin, e.work, kctl, "token", "create", "--role", role, "--ttl", "10m")
			tok = strings.TrimSpace(out)
			return err
		})
		return tok
	}
	e.procs["c2"] = testenv.Start(b, "c2", exec.Command(ctl, "run", "--name", "c2", "--data-dir", filepath.Join(e.work, "c2"), "--listen", c2api, "--raft-listen", testenv.FreeAddr(b), "--join", c1api, "--token", token("controller"), "--heartbeat-interval", "1s"))
	prefix := dockertest.Prefix(b)
	host := "web-" + prefix
	e.procs["agent"] = testenv.Start(b, "agent", exec.Command(filepath.Join(e.bin, "agent"), "run", "--name", host, "--data-dir", filepath.Join(e.work, "agent"), "--controller", c1api, "--token", token("agent"), "--shared-engine"))

	// kctl's credentials name c2 only.
	b2, err := os.ReadFile(creds)
	must(b, err)
	c2creds := filepath.Join(e.work, "c2.kctl.yaml")
	var kept []string
	for _, l := range strings.Split(string(b2), "\n") {
		if strings.Contains(l, c1api) {
			l = strings.Replace(l, c1api, c2api, 1)
		}
		kept = append(kept, l)
	}
	must(b, os.WriteFile(c2creds, []byte(strings.Join(kept, "\n")), 0o600))
	e.kenv = []string{"KCTL_CREDENTIALS=" + c2creds}
	testenv.WaitFor(b, 60*time.Second, func() error { // the agent is connected, seen from c2
		out, err := run(e.kenv, e.work, kctl, "agents", "-o", "json")
		if err == nil && !strings.Contains(out, `"connected"`) {
			err = fmt.Errorf("agents: %s", out)
		}
		return err
	})

	service := "sb" + prefix
	image := "localhost:5000/kctl-bench/" + service + ":latest"
	app := testenv.BuildBinary(b, "./test/app")
	dockertest.BuildImage(b, cli, image, app, "/app", []string{`ENTRYPOINT ["/app"]`}, map[string]string{"service": service})
	b.Cleanup(func() { dockertest.RemoveImage(cli, image) })
	dockertest.CleanupContainers(b, cli, host+".", nil, nil)
	e.ctr = host + "." + service + "-web-v1"
	cfg := &container.Config{Image: image, Env: []string{"KAMAL_VERSION=v1"}, Labels: map[string]string{
		"service": service, "role": "web", "destination": "", "kctl.agent": host,
	}}
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, cfg, nil, nil, nil, e.ctr)
	must(b, err)
	must(b, cli.ContainerStart(ctx, c.ID, container.StartOptions{}))
	e.project = filepath.Join(e.work, "app")
	must(b, os.MkdirAll(filepath.Join(e.project, "config"), 0o755))
	must(b, os.MkdirAll(filepath.Join(e.project, ".kamal"), 0o755))
	must(b, os.WriteFile(filepath.Join(e.project, "config", "deploy.yml"), []byte(fmt.Sprintf(deployYML, service, host)), 0o644))
	must(b, os.WriteFile(filepath.Join(e.project, ".kamal", "secrets"), []byte("KAMAL_REGISTRY_PASSWORD=x\n"), 0o600))
	return e
}

func (e *env) kctl(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(e.bin, "kctl"), args...)
	cmd.Dir = e.project
	cmd.Env = append(os.Environ(), e.kenv...)
	return cmd
}

// timed runs cmd, discarding stdout, and returns its wall time.
func timed(b *testing.B, cmd *exec.Cmd) time.Duration {
	b.Helper()
	var errb strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &errb
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, errb.String())
	}
	return time.Since(t0)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func BenchmarkStreams(b *testing.B) {
	e := newEnv(b)
	for b.Loop() {
	}
	b.StopTimer()
	parts := []struct {
		name string
		fn   func()
	}{{"exec", e.execCat}, {"keys", e.keystrokes}, {"logs", e.logsTail}, {"follow", e.logsFollow}}
	only := os.Getenv("BENCH_STREAMS") // e.g. "exec,keys": these parts only
	for _, p := range parts {
		if only == "" || slices.Contains(strings.Split(only, ","), p.name) {
			p.fn()
		}
	}
}

// execCat: `app exec --reuse "/app zero N"` vs `docker exec` of the same.
func (e *env) execCat() {
	b := e.b
	mib := 1024
	if v, err := strconv.Atoi(os.Getenv("BENCH_EXEC_MIB")); err == nil && v > 0 {
		mib = v
	}
	arg := fmt.Sprintf("/app zero %d", mib<<20)
	timed(b, e.kctl("app", "exec", "--reuse", "/app zero 1024")) // warm up
	var kt, dt []time.Duration
	rss0 := e.rssSnap()
	stopRSS := e.samplePeakRSS()
	cpu0 := e.cpuSnap()
	var kcpu time.Duration
	for range 3 {
		cmd := e.kctl("app", "exec", "--reuse", arg)
		kt = append(kt, timed(b, cmd))
		kcpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		dt = append(dt, timed(b, exec.Command("docker", "exec", e.ctr, "/app", "zero", strconv.Itoa(mib<<20))))
	}
	cpu1 := e.cpuSnap()
	peak := stopRSS()
	mbs := func(d time.Duration) float64 { return float64(mib<<20) / d.Seconds() / 1e6 }
	fmt.Printf("exec cat CPU per MiB (3 runs): kctl %s, c2 %s, c1 %s, agent %s; load %s\n",
		perMiB(kcpu, 3*mib), perMiB(cpu1["c2"]-cpu0["c2"], 3*mib), perMiB(cpu1["c1"]-cpu0["c1"], 3*mib), perMiB(cpu1["agent"]-cpu0["agent"], 3*mib), loadavg())
	fmt.Printf("exec cat %d MiB (median of 3): kctl app exec %.0f MB/s (%s), docker exec %.0f MB/s (%s)\n",
		mib, mbs(median(kt)), median(kt).Round(time.Millisecond), mbs(median(dt)), median(dt).Round(time.Millisecond))
	fmt.Printf("exec cat %d MiB RSS before → peak (MiB): c2 %d → %d, c1 %d → %d, agent %d → %d\n",
		mib, rss0["c2"], peak["c2"], rss0["c1"], peak["c1"], rss0["agent"], peak["agent"])
}

// rssSnap is the RSS of c1, c2 and the agent in MiB.
func (e *env) rssSnap() map[string]int {
	m := map[string]int{}
	for n, p := range e.procs {
		m[n] = rssMiB(p.Pid())
	}
	return m
}

// samplePeakRSS samples the RSS of c1, c2 and the agent every 50 ms until
// the returned function is called, which returns the peaks.
func (e *env) samplePeakRSS() func() map[string]int {
	stop, done := make(chan struct{}), make(chan map[string]int)
	go func() {
		peak := e.rssSnap()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				done <- peak
				return
			case <-t.C:
				for n, v := range e.rssSnap() {
					peak[n] = max(peak[n], v)
				}
			}
		}
	}()
	return func() map[string]int { close(stop); return <-done }
}

// rssMiB is a process's resident set size (0 when unknown).
func rssMiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb / 1024
		}
	}
	return 0
}

// keystrokes: `app exec -i` vs `docker exec -it` of `/app cat` on the same
// container, both under a pseudo-terminal and open at once: one byte is
// typed into each in turn and the time until the remote terminal's echo
// reaches the local one is measured.
func (e *env) keystrokes() {
	b := e.b
	type session struct {
		f  *os.File
		ch chan byte
	}
	open := func(cmd *exec.Cmd) *session {
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
		must(b, err)
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = f.Close() })
		s := &session{f: f, ch: make(chan byte, 1<<16)}
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := f.Read(buf)
				for _, c := range buf[:n] {
					s.ch <- c
				}
				if err != nil {
					close(s.ch)
					return
				}
			}
		}()
		return s
	}
	// echo types c and waits for it to come back.
	echo := func(s *session, c byte, timeout time.Duration) (time.Duration, bool) {
		t0 := time.Now()
		if _, err := s.f.Write([]byte{c}); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(timeout)
		for {
			select {
			case got, ok := <-s.ch:
				if !ok {
					b.Fatal("the session ended")
				}
				if got == c {
					return time.Since(t0), true
				}
			case <-deadline:
				return 0, false
			}
		}
	}
	k := open(e.kctl("app", "exec", "-i", "--reuse", "/app cat"))
	d := open(exec.Command("docker", "exec", "-it", e.ctr, "/app", "cat"))
	for _, s := range []*session{k, d} {
		// Until the client put the terminal in raw mode (before, the local
		// terminal echoes), then until the remote terminal echoes.
		testenv.WaitFor(b, 30*time.Second, func() error {
			tio, err := unix.IoctlGetTermios(int(s.f.Fd()), unix.TCGETS)
			if err == nil && tio.Lflag&unix.ECHO != 0 {
				err = errors.New("the terminal still echoes locally")
			}
			return err
		})
		testenv.WaitFor(b, 30*time.Second, func() error {
			if _, ok := echo(s, '.', 500*time.Millisecond); !ok {
				return errors.New("no echo yet")
			}
			return nil
		})
	}
	const n = 400 // under the terminal's 4095-byte line
	var kt, dt []time.Duration
	for i := range n {
		c := byte('a' + i%26)
		kd, ok := echo(k, c, 10*time.Second)
		dd, ok2 := echo(d, c, 10*time.Second)
		if !ok || !ok2 {
			b.Fatalf("keystroke %d: no echo", i)
		}
		kt, dt = append(kt, kd), append(dt, dd)
	}
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	fmt.Printf("exec -i keystroke echo (%d keys, load %s): kctl app exec -i p50 %s p99 %s; docker exec -it p50 %s p99 %s; added p50 %s p99 %s\n",
		n, loadavg(), r(median(kt)), r(quantile(kt, 0.99)), r(median(dt)), r(quantile(dt, 0.99)),
		r(median(kt)-median(dt)), r(quantile(kt, 0.99)-quantile(dt, 0.99)))
}

// logsTail: `app logs -n 1000` vs `docker logs --tail 1000`.
func (e *env) logsTail() {
	b := e.b
	var sb strings.Builder
	for i := range 1200 {
		fmt.Fprintf(&sb, "log bench line %d of the container's own log\n", i)
	}
	fill := exec.Command("docker", "exec", "-i", e.ctr, "/app", "shell")
	fill.Stdin = strings.NewReader(sb.String())
	must(b, fill.Run())
	timed(b, e.kctl("app", "logs", "-n", "1000")) // warm up
	var kt, dt []time.Duration
	for range 15 {
		kt = append(kt, timed(b, e.kctl("app", "logs", "-n", "1000")))
		dt = append(dt, timed(b, exec.Command("docker", "logs", "--tail", "1000", e.ctr)))
	}
	fmt.Printf("logs -n 1000 (median of 15, load %s): kctl app logs %s, docker logs --tail %s, ratio %.2f×\n",
		loadavg(), median(kt).Round(time.Millisecond), median(dt).Round(time.Millisecond), float64(median(kt))/float64(median(dt)))
}

// follower runs a following command and reports when each marker line
// arrives on its stdout.
func follower(b *testing.B, cmd *exec.Cmd) <-chan struct {
	line string
	at   time.Time
} {
	out, err := cmd.StdoutPipe()
	must(b, err)
	must(b, cmd.Start())
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ch := make(chan struct {
		line string
		at   time.Time
	}, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "marker-"); i >= 0 {
				ch <- struct {
					line string
					at   time.Time
				}{strings.Fields(sc.Text()[i:])[0], time.Now()}
			}
		}
	}()
	return ch
}

// logsFollow: a line written in the container reaches `app logs -f`'s
// stdout how long after it reaches `docker logs -f`'s, both following at
// once.
func (e *env) logsFollow() {
	b := e.b
	kc := follower(b, e.kctl("app", "logs", "-f", "-n", "0"))
	dc := follower(b, exec.Command("docker", "logs", "-f", "--tail", "0", e.ctr))
	wait := func(ch <-chan struct {
		line string
		at   time.Time
	}, want string) time.Time {
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-ch:
				if m.line == want {
					return m.at
				}
			case <-deadline:
				b.Fatalf("%s did not arrive", want)
			}
		}
	}
	var added, docker []time.Duration
	for i := range 60 {
		want := fmt.Sprintf("marker-%d", i)
		t0 := time.Now()
		must(b, exec.Command("docker", "exec", e.ctr, "/app", "log", want).Run())
		d := wait(dc, want)
		k := wait(kc, want)
		if i < 5 { // the first lines warm up both followers
			continue
		}
		added, docker = append(added, k.Sub(d)), append(docker, d.Sub(t0))
	}
	fmt.Printf("logs -f added latency over docker logs -f (%d lines, load %s): p50 %s, p99 %s (docker exec write → docker logs -f p50 %s)\n",
		len(added), loadavg(), median(added).Round(100*time.Microsecond), quantile(added, 0.99).Round(100*time.Microsecond), median(docker).Round(time.Millisecond))
}

// cpuTime is the user+system CPU time pid has used (Linux /proc).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100
}

// cpuSnap is the CPU time of c1, c2 and the agent.
func (e *env) cpuSnap() map[string]time.Duration {
	m := map[string]time.Duration{}
	for n, p := range e.procs {
		m[n] = cpuTime(p.Pid())
	}
	return m
}

func perMiB(d time.Duration, mib int) time.Duration {
	return (d / time.Duration(mib)).Round(10 * time.Microsecond)
}

// loadavg is the machine's 1-minute load average.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Fields(string(b) + " ?")[0]
}
