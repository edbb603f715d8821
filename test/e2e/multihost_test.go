package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// execIn runs cmd in a running container (docker exec) and returns its
// stdout, failing on a non-zero exit.
func execIn(ctx context.Context, cli *client.Client, name string, cmd ...string) (string, error) {
	ex, err := cli.ContainerExecCreate(ctx, name, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", err
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		return "", err
	}
	in, err := cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return "", err
	}
	if in.ExitCode != 0 {
		return stdout.String(), fmt.Errorf("exec %s in %s: exit %d: %s", strings.Join(cmd, " "), name, in.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// viaProxy requests path from host's own kamal-proxy container, from inside
// host's app container on the kamal network (the proxies publish no port).
func viaProxy(cli *client.Client, host, appContainer, path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := execIn(ctx, cli, appContainer, "/app", "get", "http://kamal-proxy-"+host+path)
	return strings.TrimSpace(out), err
}

// TestE2E_MultiHostBootLimit: three agents share the engine, role web runs
// on all three with boot.limit 1. v1 then v2 deploy; every host serves v2
// through its own proxy, the three boot groups ran one after another, and
// each host has exactly one v2 container.
func TestE2E_MultiHostBootLimit(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(1)
	hosts := e.startAgents(cs, 3)
	// Role web on every agent, one host booting at a time, and proxies
	// that publish no port (three cannot share the host's).
	p := newProjectWith(t, e, func(d *testenv.DeployYML) {
		d.Roles, d.BootLimit, d.HTTPPort = []testenv.Role{{Name: "web", Hosts: hosts}}, 1, 0
	})
	cli := testenv.Docker(t)

	for _, v := range []string{"v1", "v2"} {
		out, err := e.kctlIn(p.Dir, "deploy", "--version", v)
		if err != nil {
			t.Fatalf("deploy %s: %v", v, err)
		}
		if !strings.Contains(out, "Finished all in") {
			t.Errorf("deploy %s output lacks the summary:\n%s", v, out)
		}
		for _, h := range hosts {
			app := engineName(h, p.service+"-web-"+v)
			if got, err := viaProxy(cli, h, app, "/version"); err != nil || got != v {
				t.Errorf("%s: GET /version through kamal-proxy-%s = %q, %v; want %s", h, h, got, err, v)
			}
			// The proxy of host h routes to host h's container.
			if got, err := viaProxy(cli, h, app, "/env/KAMAL_HOST"); err != nil || got != h {
				t.Errorf("%s: KAMAL_HOST through kamal-proxy-%s = %q, %v; want %s", h, h, got, err, h)
			}
		}
	}

	// Exactly one v2 container per host, none under Kamal's bare name.
	for _, h := range hosts {
		if names := containersNamed(t, engineName(h, p.service+"-web-v2")); len(names) != 1 {
			t.Errorf("%s: v2 containers = %v, want exactly one", h, names)
		}
	}
	if names := containersNamed(t, p.service+"-web-"); len(names) != 0 {
		t.Errorf("containers without an agent prefix: %v", names)
	}

	// The v2 deploy's plan: three boot groups of one host each, in
	// deploy.yml's order.
	out, err := e.kctlIn(p.Dir, "deploys", "-o", "json")
	must(t, err)
	var deploys []map[string]string
	must(t, json.Unmarshal([]byte(out), &deploys))
	if len(deploys) == 0 || deploys[0]["version"] != "v2" {
		t.Fatalf("newest deploy is not v2: %s", out)
	}
	id := deploys[0]["id"]
	show, err := e.kctlIn(p.Dir, "deploys", "show", id)
	must(t, err)
	pos := 0
	for i, h := range hosts {
		head := fmt.Sprintf("== boot %d/3\n", i+1)
		at := strings.Index(show[pos:], head)
		if at < 0 {
			t.Fatalf("deploys show lacks %q after offset %d:\n%s", strings.TrimSpace(head), pos, show)
		}
		pos += at + len(head)
		group := show[pos:]
		if end := strings.Index(group, "=="); end >= 0 {
			group = group[:end]
		}
		if !strings.Contains(group, h) || strings.Count(strings.TrimSpace(group), "\n") != 0 {
			t.Errorf("boot group %d = %q, want one line for %s", i+1, group, h)
		}
	}

	// One after another: host i's boot was recorded finished (audit time)
	// before host i+1's v2 container was created.
	out, err = e.kctlIn(p.Dir, "audit", "--service", p.service, "-o", "json")
	must(t, err)
	var entries []map[string]string
	must(t, json.Unmarshal([]byte(out), &entries))
	finished := map[string]time.Time{}
	for _, en := range entries {
		if en["deploy"] == id && en["action"] == "boot "+p.service+"-web-v2" && en["result"] == "succeeded" {
			ts, err := time.Parse(time.RFC3339Nano, en["time"])
			must(t, err)
			finished[en["host"]] = ts
		}
	}
	for i, h := range hosts {
		if finished[h].IsZero() {
			t.Fatalf("audit lacks %s's successful v2 boot:\n%s", h, out)
		}
		if i == 0 {
			continue
		}
		in, err := cli.ContainerInspect(context.Background(), engineName(h, p.service+"-web-v2"))
		must(t, err)
		created, err := time.Parse(time.RFC3339Nano, in.Created)
		must(t, err)
		prev := hosts[i-1]
		if !created.After(finished[prev]) {
			t.Errorf("%s's v2 container was created at %s, before %s's boot finished at %s: boot groups overlapped",
				h, created.Format(time.RFC3339Nano), prev, finished[prev].Format(time.RFC3339Nano))
		}
		t.Logf("%s boot finished %s; %s v2 created %s", prev, finished[prev].Format("15:04:05.000"), h, created.Format("15:04:05.000"))
	}
}
