package docker_test

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// agentOn returns a harness for another agent on the same engine, network,
// service and images as h, as `agent run --shared-engine --name <name>`
// configures it.
func (h *harness) agentOn(name string) *harness {
	h.t.Helper()
	agent := h.prefix + name
	rt, err := docker.New(docker.Config{
		DataDir: h.t.(*testing.T).TempDir(), Client: h.cli, AgentName: agent, NamePrefix: agent + ".",
		ProxyName: agent + "-proxy", ProxyVolume: agent + "-proxy-config",
		PollInterval: 100 * time.Millisecond, Logf: h.t.Logf,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	o := *h
	o.rt = rt
	return &o
}

// engineState returns the engine's state of the container named exactly
// name ("" when absent).
func (h *harness) engineState(name string) string {
	h.t.Helper()
	list, err := h.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", "^/"+name+"$"))})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(list) != 1 {
		return ""
	}
	return list[0].State
}

// versions returns the role's versions, sorted (ListVersions reports them
// newest first).
func (h *harness) versions(role string) []string {
	h.t.Helper()
	res := h.mustDo(&agentv1.Operation{Op: &agentv1.Operation_ListVersions{ListVersions: &agentv1.ListVersions{Service: h.service, Role: role}}})
	return slices.Sorted(slices.Values(res.GetVersions()))
}

func (h *harness) current(role string) string {
	h.t.Helper()
	id, err := h.rt.CurrentContainer(context.Background(), h.service, role, "")
	if err != nil {
		h.t.Fatalf("CurrentContainer: %v", err)
	}
	return id
}

// TestNamePrefix_AgentsShareAnEngine: two agents (different NamePrefix and
// AgentName) boot the same specs on one engine; each keeps its own
// containers, current version, stale stop, prune, rollback rename and
// accessory, and reports names without its prefix.
func TestNamePrefix_AgentsShareAnEngine(t *testing.T) {
	h := newHarness(t)
	h.buildApp("v1", "v2", "v3")
	h.mustDo(opEnsureNetwork(h.network))
	a, b := h.agentOn("a"), h.agentOn("b")
	pa, pb := h.prefix+"a.", h.prefix+"b."
	web := func(v string) string { return h.service + "-worker-" + v }

	for _, step := range []struct {
		h *harness
		v string
	}{{a, "v1"}, {b, "v1"}, {a, "v2"}} {
		if res := step.h.bootWorker(step.v); !res.GetOk() {
			t.Fatalf("boot %s = %q %q", step.v, res.GetError(), res.GetDetail())
		}
	}
	// Same spec names, separate engine containers; a's v2 stopped a's v1
	// only, b's v1 still runs.
	want := map[string]string{pa + web("v1"): "exited", pa + web("v2"): "running", pb + web("v1"): "running", web("v1"): ""}
	for n, st := range want {
		if got := h.engineState(n); got != st {
			t.Errorf("container %s state = %q, want %q", n, got, st)
		}
	}
	if got := a.versions("worker"); !slices.Equal(got, []string{"v1", "v2"}) {
		t.Errorf("a ListVersions = %v, want [v1 v2]", got)
	}
	if got := b.versions("worker"); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("b ListVersions = %v, want [v1]", got)
	}
	ca, cb := a.current("worker"), b.current("worker")
	if in, _ := h.cli.ContainerInspect(context.Background(), ca); in.Name != "/"+pa+web("v2") {
		t.Errorf("a's current container = %s, want %s", in.Name, pa+web("v2"))
	}
	if in, _ := h.cli.ContainerInspect(context.Background(), cb); in.Name != "/"+pb+web("v1") {
		t.Errorf("b's current container = %s, want %s", in.Name, pb+web("v1"))
	}

	// Facts carry spec names, only the agent's own.
	res := a.mustDo(&agentv1.Operation{Op: &agentv1.Operation_GatherFacts{GatherFacts: &agentv1.GatherFacts{}}})
	var names []string
	for _, c := range res.GetFacts().GetContainers() {
		names = append(names, c.GetName())
	}
	if !slices.Equal(names, []string{web("v1"), web("v2")}) {
		t.Errorf("a's facts names = %v, want [%s %s]", names, web("v1"), web("v2"))
	}

	// StopStale keeps each agent's own current version: b's v1 survives
	// a's stale stop, and b's stale stop leaves a's v2 alone.
	a.mustDo(&agentv1.Operation{Op: &agentv1.Operation_StopStale{StopStale: &agentv1.StopStale{Service: h.service, Role: "worker"}}})
	b.mustDo(&agentv1.Operation{Op: &agentv1.Operation_StopStale{StopStale: &agentv1.StopStale{Service: h.service, Role: "worker"}}})
	if got := h.engineState(pb + web("v1")); got != "running" {
		t.Errorf("b's v1 after both stale stops = %q, want running", got)
	}
	if got := h.engineState(pa + web("v2")); got != "running" {
		t.Errorf("a's v2 after both stale stops = %q, want running", got)
	}

	// Prune is per agent: a boots v3 (v1, v2 stopped) and keeps one stopped
	// container; b's stopped v1 (b booted v2) is not a's to prune.
	if res := a.bootWorker("v3"); !res.GetOk() {
		t.Fatalf("a boot v3 = %q", res.GetError())
	}
	if res := b.bootWorker("v2"); !res.GetOk() {
		t.Fatalf("b boot v2 = %q", res.GetError())
	}
	a.mustDo(&agentv1.Operation{Op: &agentv1.Operation_Prune{Prune: &agentv1.Prune{Service: h.service, Retain: 1, Containers: true}}})
	if got := a.versions("worker"); !slices.Equal(got, []string{"v2", "v3"}) {
		t.Errorf("a ListVersions after prune = %v, want [v2 v3]", got)
	}
	if got := b.versions("worker"); !slices.Equal(got, []string{"v1", "v2"}) {
		t.Errorf("b ListVersions after a's prune = %v, want [v1 v2]", got)
	}

	// A rollback with a changed spec renames only a's container.
	if res := a.bootWorker("v2", &specv1.KeyValue{Key: "CHANGED", Value: "1"}); !res.GetOk() {
		t.Fatalf("a rollback v2 = %q", res.GetError())
	}
	replaced := 0
	for _, n := range h.containerNames() {
		if strings.HasPrefix(n, pa+web("v2_replaced_")) {
			replaced++
		}
	}
	if got := a.versions("worker"); replaced != 1 || !slices.Contains(got, "v2") || slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, "_replaced_") }) ||
		h.engineState(pb+web("v2")) != "running" || h.engineState(pa+web("v2")) != "running" {
		t.Errorf("after a's rollback: a versions %v (%d replaced containers), b's v2 %q, a's v2 %q; want one a v2_replaced_ not listed as a version, both v2 running",
			got, replaced, h.engineState(pb+web("v2")), h.engineState(pa+web("v2")))
	}

	// A run-once container (`app exec` without --reuse) carries the prefix
	// while it runs and is gone afterwards.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := a.rt.RunOnce(context.Background(), a.app("worker", "v3"), docker.ExecOptions{Cmd: []string{"cat"}, Stdin: pr, Stdout: io.Discard})
		done <- err
	}()
	testenv.WaitFor(t, 30*time.Second, func() error {
		list, err := h.cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", "^/"+regexp.QuoteMeta(pa+web("exec-v3-"))))})
		if err != nil || len(list) != 1 {
			return fmt.Errorf("run-once containers named %sexec-v3-*: %d, %v", pa+web(""), len(list), err)
		}
		return nil
	})
	pw.Close()
	if err := <-done; err != nil {
		t.Errorf("RunOnce: %v", err)
	}

	// Accessories: the same accessory on both agents, removed on one.
	acc := &specv1.Container{
		Kind: specv1.ContainerKind_CONTAINER_KIND_ACCESSORY, Name: h.service + "-cache", Image: h.repo + ":v1",
		Network: h.network, Args: []string{"serve"},
		Labels: []*specv1.KeyValue{{Key: "service", Value: h.service + "-cache"}},
	}
	for _, x := range []*harness{a, b} {
		x.mustDo(&agentv1.Operation{Op: &agentv1.Operation_BootAccessory{BootAccessory: &agentv1.BootAccessory{Container: acc}}})
	}
	a.mustDo(&agentv1.Operation{Op: &agentv1.Operation_AccessoryControl{AccessoryControl: &agentv1.AccessoryControl{Name: h.service + "-cache", Action: agentv1.AccessoryControl_ACTION_REMOVE}}})
	if ga, gb := h.engineState(pa+h.service+"-cache"), h.engineState(pb+h.service+"-cache"); ga != "" || gb != "running" {
		t.Errorf("accessory after a's remove: a %q, b %q; want a gone, b running", ga, gb)
	}
}
