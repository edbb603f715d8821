package testenv_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/testenv"
)

func TestPoll(t *testing.T) {
	t.Parallel()
	n := 0
	if err := testenv.Poll(5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, n)
	}
	start := time.Now()
	err := testenv.Poll(50*time.Millisecond, func() error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "never") || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("Poll(never) = %v after %v, want the last error after the timeout", err, time.Since(start))
	}
	calls := 0
	err = testenv.Poll(10*time.Second, func() error { calls++; return testenv.Stop(errors.New("exited")) })
	if err == nil || calls != 1 || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("Poll(Stop) = %v after %d calls, want the error at once", err, calls)
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	a, b := testenv.FreeAddr(t), testenv.FreeAddr(t)
	if !strings.HasPrefix(a, "127.0.0.1:") || a == b {
		t.Fatalf("FreeAddr = %q, %q; want two loopback addresses", a, b)
	}
}

// TestStart_StopsTheProcessGroup: Stop ends the process and the children
// it started (the group), and the output is kept.
func TestStart_StopsTheProcessGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	p := testenv.Start(t, "sh", exec.Command("sh", "-c", "sleep 300 & echo $! > "+pidFile+"; echo started; wait"))
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(p.Output(), "started") {
			return fmt.Errorf("output %q", p.Output())
		}
		return nil
	})
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	_ = p.Stop()
	if ok, _ := p.Exited(); !ok {
		t.Fatal("Exited = false after Stop")
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		// The child is our grandchild: once killed it is reaped by init,
		// or lingers as a zombie; either way it no longer runs.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return nil
		}
		if syscall.Kill(child, 0) != nil {
			return nil
		}
		return fmt.Errorf("child %d still runs", child)
	})
}

// TestBuild_OncePerSourceTree: a second Build of the same packages is the
// same directory.
func TestBuild_OncePerSourceTree(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	a := testenv.BuildBinary(t, "./test/app")
	b := testenv.BuildBinary(t, "./test/app")
	if a != b {
		t.Fatalf("BuildBinary twice = %q, %q; want the same build", a, b)
	}
	if fi, err := os.Stat(a); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("BuildBinary = %v, %v; want an executable", fi, err)
	}
}

func TestNewProject(t *testing.T) {
	t.Parallel()
	p := testenv.NewProject(t, filepath.Join(t.TempDir(), "app"), "service: x\n", "A=b\n")
	if fi, err := os.Stat(p.Path(".kamal/secrets")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets: %v, %v; want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(p.Path("config/deploy.yml")); string(b) != "service: x\n" {
		t.Fatalf("deploy.yml = %q", b)
	}
}

// TestStartRegistry: the registry asks for credentials, accepts its own,
// and is gone after its Proc stops.
func TestStartRegistry(t *testing.T) {
	t.Parallel()
	reg := testenv.StartRegistry(t)
	get := func(user, password string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+reg.Addr+"/v2/", nil)
		req.SetBasicAuth(user, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(reg.User, "wrong"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("GET /v2/ with a wrong password = %d, %v; want 401", code, err)
	}
	if code, err := get(reg.User, reg.Password); err != nil || code != http.StatusOK {
		t.Errorf("GET /v2/ with the password = %d, %v; want 200", code, err)
	}
	_ = reg.Proc.Stop()
	if _, err := get(reg.User, reg.Password); err == nil {
		t.Errorf("the registry still answers after Stop")
	}
}

// TestDeployYML: roles with a cmd list their hosts under hosts:, and a
// proxy without an HTTP port publishes none.
func TestDeployYML(t *testing.T) {
	t.Parallel()
	reg := testenv.Registry{Addr: "127.0.0.1:5000", User: "kctl"}
	y := testenv.DeployYML{Service: "s", Image: "kctl-test/s", ProxyRepo: "proxy", Registry: reg, BootLimit: 1,
		Roles: []testenv.Role{{Name: "web", Hosts: []string{"a", "b"}}, {Name: "worker", Hosts: []string{"a"}, Cmd: "serve"}}}.String()
	for _, want := range []string{"servers:\n  web:\n    - a\n    - b\n  worker:\n    hosts:\n      - a\n    cmd: serve\n",
		"boot:\n  limit: 1\n", "    publish: false\n", "  server: 127.0.0.1:5000\n  username: kctl\n"} {
		if !strings.Contains(y, want) {
			t.Errorf("DeployYML lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(y, "http_port") || strings.Contains(y, "env:") || strings.Contains(y, "context:") {
		t.Errorf("DeployYML has a port, env or builder context it was not given:\n%s", y)
	}
}
