package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// goBuild builds the three binaries from the source tree src into out, with
// extra ldflags.
func goBuild(t *testing.T, src, out, ldflags string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w "+ldflags, "-o", out+"/", "./cmd/controller", "./cmd/agent", "./cmd/kctl")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\n%s", src, err, b)
	}
}

// baseBinaries checks out test/upgrade/BASE with `git worktree add` into a
// temporary directory, builds it and returns the binaries' directory. The
// worktree is removed at once (the binaries stay in the test's temp dir).
func baseBinaries(t *testing.T) string {
	t.Helper()
	root := testenv.ModuleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "test", "upgrade", "BASE"))
	must(t, err)
	base := strings.TrimSpace(string(b))
	wt := filepath.Join(t.TempDir(), "base-src")
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git("worktree", "add", "--detach", wt, base)
	defer git("worktree", "remove", "--force", wt)
	bin := filepath.Join(t.TempDir(), "base-bin")
	goBuild(t, wt, bin, "-X github.com/kctl-dev/kctl/internal/version.Version=base-"+base[:7])
	return bin
}

// TestE2E_ProtocolTooNewRefusesToJoin: a controller built with a protocol
// version the cluster does not run (raised with -ldflags -X) refuses to
// join, clearly, before the cluster records it.
func TestE2E_ProtocolTooNewRefusesToJoin(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(1)
	newer := filepath.Join(t.TempDir(), "newer")
	goBuild(t, testenv.ModuleRoot(t), newer, protocol.LDFlag(protocol.Current()+97))
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "controller"))
	cmd := exec.Command(filepath.Join(newer, "controller"), "run", "--name", "c9", "--data-dir", filepath.Join(e.dir, "c9"),
		"--listen", testenv.FreeAddr(t), "--raft-listen", testenv.FreeAddr(t), "--join", cs[0].api, "--token", tok)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a controller of protocol %d joined a cluster of protocol %d:\n%s", protocol.Current()+97, protocol.Current(), out)
	}
	want := fmt.Sprintf("understands protocol versions %d to %d, the cluster runs %d", protocol.Current()+96, protocol.Current()+97, protocol.Current())
	if !strings.Contains(string(out), want) {
		t.Errorf("refusal does not say why (want %q):\n%s", want, out)
	}
	st, err := e.status()
	must(t, err)
	if len(st.Nodes) != 1 {
		t.Errorf("the refused controller was recorded: %+v", st)
	}
}

// TestE2E_RollingUpgradeFromBase (make test-upgrade): a 3-controller
// cluster and an agent on the BASE build (protocol 1, no versions on the
// wire); a deploy starts; the controllers are replaced one at a time by the
// current build on their data dirs; the deploy completes; the upgraded
// cluster records protocol version 2 for every controller and serves what
// BASE did not have (a backup).
func TestE2E_RollingUpgradeFromBase(t *testing.T) {
	if os.Getenv("KCTL_UPGRADE") == "" {
		t.Skip("long (builds the BASE commit): run with make test-upgrade (KCTL_UPGRADE=1)")
	}
	e := newEnv(t)
	current := e.bin
	e.bin = baseBinaries(t)
	cs := e.startCluster(3)
	e.startAgent(cs)
	p := newProject(t, e)
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy v1 on BASE: %v\n%s", err, out)
	}
	p.slowStart(t, "8s")
	id, err := e.kctlIn(p.Dir, "deploy", "--version", "v2", "--detach")
	must(t, err)
	id = strings.TrimSpace(id)
	// The upgrade starts while the deploy is inside its boot step.
	testenv.WaitFor(t, 60*time.Second, func() error {
		if len(containersNamed(t, engineName(e.agent, p.service+"-web-v2"))) == 0 {
			return fmt.Errorf("no %s-web-v2 yet", p.service)
		}
		return nil
	})
	if show := e.deployShow(p, id); show.State != "running" || len(show.unfinished()) == 0 {
		t.Fatalf("before the upgrade: deploy %s is %s with unfinished steps %v; want running", id, show.State, show.unfinished())
	}

	// Replace the controllers one at a time: stop the BASE process, start
	// the current build on the same data dir and addresses.
	for _, c := range cs {
		must(t, c.p.Stop())
		e.bin = current
		c.p = e.start(c.name+"-upgraded", "controller", "run", "--name", c.name, "--data-dir", c.dir, "--listen", c.api, "--raft-listen", c.raft, "--heartbeat-interval", "1s")
		e.waitVoters(3)
		t.Logf("%s upgraded", c.name)
	}
	e.bin = current
	testenv.WaitFor(t, 120*time.Second, func() error {
		s, err := e.deployState(p.Dir, id)
		if err != nil {
			return err
		}
		if s == "failed" {
			out, _ := e.kctlIn(p.Dir, "deploys", "show", id)
			return testenv.Stop(fmt.Errorf("deploy %s failed:\n%s", id, out))
		}
		if s != "succeeded" {
			return fmt.Errorf("deploy %s is %s", id, s)
		}
		return nil
	})
	if got, err := p.get("/"); err != nil || got != "v2\n" {
		t.Errorf("GET / = %q, %v; want v2", got, err)
	}
	// Every controller now records protocol 2; the cluster saves backups.
	path := filepath.Join(e.dir, "after-upgrade.kctl")
	testenv.WaitFor(t, 30*time.Second, func() error {
		if _, err := e.kctl("cluster", "snapshot", "save", path); err != nil {
			return err
		}
		for _, n := range schema.Nodes.Values(readBackupState(t, path), "") {
			if protocol.Normalize(n.GetProtocolVersion()) != protocol.Current() {
				return fmt.Errorf("%s records protocol %d", n.GetName(), n.GetProtocolVersion())
			}
		}
		return nil
	})
	// The BASE agent still works with the upgraded controllers.
	e.waitAgent(e.agent, "connected")
	if out, err := e.kctl("agents", "ping", e.agent, "--wait", "30s"); err != nil {
		t.Errorf("ping the BASE agent: %v\n%s", err, out)
	}
}
