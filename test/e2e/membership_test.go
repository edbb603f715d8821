package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// waitHealthy waits until `kctl cluster status` lists exactly names, all
// voters, with no problem (it exits 0).
func (e *env) waitHealthy(t *testing.T, timeout time.Duration, names ...string) {
	t.Helper()
	testenv.WaitFor(t, timeout, func() error {
		out, err := e.kctl("cluster", "status", "-o", "json")
		if err != nil {
			return err
		}
		var st clusterStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		var got []string
		for _, n := range st.Nodes {
			got = append(got, n.Name)
			if !n.Voter {
				return fmt.Errorf("%s is not a voter yet", n.Name)
			}
		}
		if !slices.Equal(got, names) || !st.Healthy {
			return fmt.Errorf("nodes %v (want %v), problems %v", got, names, st.Problems)
		}
		return nil
	})
}

// TestE2E_ReplaceControllerUnderLoad: a 3-controller cluster with an agent
// and a deploy; c3 dies for good and is removed (`kctl cluster remove`);
// c4 joins with an empty data directory while a deploy runs, catches up
// and votes; then one of the two originals is killed: the quorum holds, c4
// alone serves kctl and an agent, and no deploy or audit entry is lost.
func TestE2E_ReplaceControllerUnderLoad(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(3)
	e.startAgent(cs)
	p := newProject(t, e)
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy v1: %v\n%s", err, out)
	}

	// c3 dies for good and is removed.
	cs[2].p.Kill()
	out := e.mustKctl("cluster", "remove", "c3")
	if !strings.Contains(out, "removed controller c3") || !strings.Contains(out, "rotate the CA") {
		t.Fatalf("cluster remove output = %q, want the removal and the CA rotation advice", out)
	}
	e.waitHealthy(t, 20*time.Second, "c1", "c2")

	// c4 joins with an empty data directory while a deploy runs.
	p.slowStart(t, "2s")
	id, err := e.kctlIn(p.Dir, "deploy", "--version", "v2", "--detach")
	if err != nil {
		t.Fatalf("deploy v2: %v\n%s", err, id)
	}
	id = strings.TrimSpace(id)
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "controller"))
	c4 := &ctl{name: "c4", api: testenv.FreeAddr(t), raft: testenv.FreeAddr(t), dir: filepath.Join(e.dir, "c4")}
	c4.p = e.start(c4.name, "controller", "run", "--name", c4.name, "--data-dir", c4.dir, "--listen", c4.api, "--raft-listen", c4.raft,
		"--join", cs[0].api+","+cs[1].api, "--token", tok, "--heartbeat-interval", "1s")
	testenv.WaitFor(t, 60*time.Second, func() error {
		s, err := e.deployState(p.Dir, id)
		if err != nil {
			return err
		}
		if s != "succeeded" {
			return fmt.Errorf("deploy v2 is %s", s)
		}
		return nil
	})
	e.waitHealthy(t, 30*time.Second, "c1", "c2", "c4")
	if strings.Contains(c4.p.Output(), "removed from the cluster") {
		t.Fatalf("c4 took itself for removed:\n%s", c4.p.Output())
	}

	// One of the originals dies: c4 and the other keep the quorum.
	st, err := e.status()
	must(t, err)
	victim, survivor := cs[0], cs[1]
	if st.Leader == cs[1].name {
		victim, survivor = cs[1], cs[0]
	}
	victim.p.Kill()
	// From now on kctl knows only c4.
	f, err := ctlclient.LoadFile(e.creds)
	must(t, err)
	f.Controllers = []string{c4.api}
	e.creds = filepath.Join(e.dir, "c4.kctl.yaml")
	must(t, f.Save(e.creds))
	testenv.WaitFor(t, 30*time.Second, func() error {
		st, err := e.status()
		if err != nil {
			return err
		}
		if st.Leader != c4.name && st.Leader != survivor.name {
			return fmt.Errorf("leader %q, want c4 or %s", st.Leader, survivor.name)
		}
		return nil
	})
	// c4 serves an agent that knows only c4.
	w4 := "w4-" + dockertest.Prefix(t)
	atok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "agent", "--ttl", "10m"))
	e.start(w4, "agent", "run", "--name", w4, "--data-dir", filepath.Join(e.dir, w4), "--controller", c4.api, "--token", atok, "--shared-engine")
	testenv.WaitFor(t, 30*time.Second, func() error {
		as, err := e.agents()
		if err != nil {
			return err
		}
		if as[w4].Status != "connected" || as[w4].Controller != c4.name {
			return fmt.Errorf("%s: %+v", w4, as[w4])
		}
		if as[e.agent].Status != "connected" {
			return fmt.Errorf("%s: %+v", e.agent, as[e.agent])
		}
		return nil
	})
	if out, err := e.kctl("agents", "ping", w4, "--payload", "via-c4", "--wait", "30s"); err != nil || !strings.Contains(out, "answered") {
		t.Fatalf("ping %s through c4 = %q, %v", w4, out, err)
	}
	// A deploy through c4 succeeds; nothing earlier is lost.
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v3"); err != nil {
		t.Fatalf("deploy v3 through c4: %v\n%s", err, out)
	}
	out, err = e.kctlIn(p.Dir, "deploys", "-o", "json")
	must(t, err)
	var deploys []map[string]string
	must(t, json.Unmarshal([]byte(out), &deploys))
	succeeded := 0
	for _, d := range deploys {
		if d["state"] == "succeeded" {
			succeeded++
		}
	}
	if succeeded != 3 {
		t.Fatalf("deploys = %s, want v1, v2 and v3 succeeded", out)
	}
	out, err = e.kctlIn(p.Dir, "audit", "--service", p.service, "-o", "json")
	must(t, err)
	var entries []map[string]string
	must(t, json.Unmarshal([]byte(out), &entries))
	booted := map[string]bool{}
	for _, en := range entries {
		if strings.HasPrefix(en["action"], "boot ") && en["result"] == "succeeded" {
			booted[en["version"]] = true
		}
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		if !booted[v] {
			t.Errorf("audit lacks the boot of %s: %s", v, out)
		}
	}
	if got, err := p.get("/"); err != nil || got != "v3\n" {
		t.Errorf("GET / = %q, %v; want v3", got, err)
	}
}
