// Package scheduler turns a deploy request into a plan: which operation runs
// on which host, in which order. It is pure: the request and a read-only view
// of the fleet go in, a plan (or an explanation of why there can be none)
// comes out. The controller records the plan in Raft and drives agents
// through it; a new leader resumes the same plan by step ID.
//
// The plan follows Kamal's deploy (shared/reference/kamal.md §3.1, §3.4):
// network, pull, proxy boot, accessories (setup), stale containers, boot
// groups of boot.limit hosts with the primary role's barrier, tag latest,
// prune.
package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/spec"
)

// ErrUnplaceable is wrapped by errors about hosts the fleet cannot serve.
var ErrUnplaceable = errors.New("scheduler: hosts cannot be served")

// ErrInvalidRequest is wrapped by errors about a malformed request.
var ErrInvalidRequest = errors.New("scheduler: invalid request")

// AgentState is what the scheduler needs to know about one agent.
type AgentState int

const (
	// AgentUnknown: no agent of that name is enrolled.
	AgentUnknown AgentState = iota
	// AgentDisconnected: enrolled, but no controller holds its session.
	AgentDisconnected
	// AgentConnected: ready to take operations.
	AgentConnected
)

// Fleet is a read-only view of the enrolled agents.
type Fleet interface {
	AgentState(name string) AgentState
}

// FleetMap is a Fleet backed by a map; absent names are unknown.
type FleetMap map[string]AgentState

// AgentState implements Fleet.
func (m FleetMap) AgentState(name string) AgentState { return m[name] }

var _ Fleet = FleetMap(nil)

// DefaultNetwork is the Docker network Kamal puts everything on.
const DefaultNetwork = "kamal"

// Plan returns the plan for req, or an error naming every host that has no
// enrolled or no connected agent, before anything changes.
func Plan(req *deployv1.Request, fleet Fleet) (*deployv1.Plan, error) {
	if req.GetLifecycle() != nil {
		return lifecyclePlan(req, fleet)
	}
	if err := validate(req); err != nil {
		return nil, err
	}
	if err := checkFleet(req, fleet); err != nil {
		return nil, err
	}
	appHosts := AppHosts(req)
	var phases []*deployv1.Phase
	add := func(ps ...*deployv1.Phase) {
		for _, p := range ps {
			if len(p.Steps) > 0 {
				phases = append(phases, p)
			}
		}
	}
	add(networkPhase(req))
	if !req.GetSkipPull() {
		add(pullPhase(req, appHosts))
	}
	if !req.GetSkipProxyBoot() {
		add(proxyPhase(req))
	}
	add(accessoriesPhase(req), stalePhase(req))
	add(bootPhases(req, appHosts)...)
	add(tagPhase(req, appHosts))
	if !req.GetSkipPrune() {
		add(prunePhase(req, appHosts))
	}
	return &deployv1.Plan{Phases: phases}, nil
}

// networkPhase ensures the Docker network on every host.
func networkPhase(req *deployv1.Request) *deployv1.Phase {
	network := req.GetNetwork()
	if network == "" {
		network = DefaultNetwork
	}
	p := &deployv1.Phase{Name: "network"}
	for _, h := range AllHosts(req) {
		p.Steps = append(p.Steps, step("network/"+h, h, "", "ensure network",
			&agentv1.Operation{Op: &agentv1.Operation_EnsureNetwork{EnsureNetwork: &agentv1.EnsureNetwork{Name: network}}}))
	}
	return p
}

// pullPhase pulls the image on every app host.
func pullPhase(req *deployv1.Request, appHosts []string) *deployv1.Phase {
	p := &deployv1.Phase{Name: "pull"}
	for _, h := range appHosts {
		p.Steps = append(p.Steps, step("pull/"+h, h, "", "pull "+req.GetImage(),
			&agentv1.Operation{Op: &agentv1.Operation_PullImage{PullImage: &agentv1.PullImage{
				Image: req.GetImage(), Auth: req.GetRegistry(), Service: req.GetService(),
			}}}))
	}
	return p
}

// proxyPhase boots kamal-proxy on every proxy host.
func proxyPhase(req *deployv1.Request) *deployv1.Phase {
	p := &deployv1.Phase{Name: "proxy"}
	for _, ph := range req.GetProxyHosts() {
		p.Steps = append(p.Steps, step("proxy/"+ph.GetHost(), ph.GetHost(), "", "boot kamal-proxy",
			&agentv1.Operation{Op: &agentv1.Operation_BootProxy{BootProxy: &agentv1.BootProxy{
				Boot: ph.GetBoot(), Auth: spec.AuthFor(ph.GetBoot().GetContainer().GetImage(), req.GetRegistry()),
			}}}))
	}
	return p
}

// accessoriesPhase boots every accessory on its hosts.
func accessoriesPhase(req *deployv1.Request) *deployv1.Phase {
	p := &deployv1.Phase{Name: "accessories"}
	for _, a := range req.GetAccessories() {
		for _, hc := range a.GetHosts() {
			h := hc.GetHost()
			p.Steps = append(p.Steps, step("accessory/"+a.GetName()+"/"+h, h, "", "boot accessory "+a.GetName(),
				&agentv1.Operation{Op: &agentv1.Operation_BootAccessory{BootAccessory: &agentv1.BootAccessory{
					Container: hc.GetContainer(), Auth: a.GetRegistry(), Proxy: a.GetProxy(),
				}}}))
		}
	}
	return p
}

// stalePhase stops every role's stale containers on its hosts.
func stalePhase(req *deployv1.Request) *deployv1.Phase {
	p := &deployv1.Phase{Name: "stale"}
	for _, r := range req.GetRoles() {
		for _, hc := range r.GetHosts() {
			p.Steps = append(p.Steps, step("stale/"+r.GetName()+"/"+hc.GetHost(), hc.GetHost(), r.GetName(), "stop stale containers",
				&agentv1.Operation{Op: &agentv1.Operation_StopStale{StopStale: &agentv1.StopStale{
					Service: req.GetService(), Role: r.GetName(), Destination: req.GetDestination(),
					LatestImage: req.GetRepository() + ":" + req.GetLatestTag(), Stop: r.GetStop(),
				}}}))
		}
	}
	return p
}

// bootPhases boots the app hosts in groups of boot.limit, waiting
// boot.wait between groups.
func bootPhases(req *deployv1.Request, appHosts []string) []*deployv1.Phase {
	groups := Groups(appHosts, req.GetBoot().GetLimit())
	phases := make([]*deployv1.Phase, len(groups))
	for i, group := range groups {
		p := bootPhase(req, group)
		p.Name = fmt.Sprintf("boot %d/%d", i+1, len(groups))
		p.GroupHosts = group
		if i < len(groups)-1 {
			p.WaitSeconds = req.GetBoot().GetWaitSeconds()
		}
		phases[i] = p
	}
	return phases
}

// tagPhase tags the deployed image as latest on every app host.
func tagPhase(req *deployv1.Request, appHosts []string) *deployv1.Phase {
	p := &deployv1.Phase{Name: "tag"}
	for _, h := range appHosts {
		p.Steps = append(p.Steps, step("tag/"+h, h, "", "tag "+req.GetImage()+" as "+req.GetLatestTag(),
			&agentv1.Operation{Op: &agentv1.Operation_TagLatest{TagLatest: &agentv1.TagLatest{
				Repository: req.GetRepository(), Version: req.GetVersion(), Tag: req.GetLatestTag(),
			}}}))
	}
	return p
}

// prunePhase prunes old containers and images on every app host.
func prunePhase(req *deployv1.Request, appHosts []string) *deployv1.Phase {
	p := &deployv1.Phase{Name: "prune"}
	for _, h := range appHosts {
		p.Steps = append(p.Steps, step("prune/"+h, h, "", "prune containers and images",
			&agentv1.Operation{Op: &agentv1.Operation_Prune{Prune: &agentv1.Prune{
				Service: req.GetService(), Retain: req.GetRetainContainers(), Containers: true, Images: true,
				KeepTags: []string{req.GetLatestTag()}, Repository: req.GetRepository(),
			}}}))
	}
	return p
}

// bootPhase boots every role on the group's hosts. Non-primary roles wait at
// Kamal's barrier: they start once any primary-role container of the group
// is healthy, and are skipped if none becomes healthy. Without
// boot.parallel_roles, a host also boots its roles one after another,
// primary first.
func bootPhase(req *deployv1.Request, group []string) *deployv1.Phase {
	inGroup := make(map[string]bool, len(group))
	for _, h := range group {
		inGroup[h] = true
	}
	p := &deployv1.Phase{}
	var primaryIDs []string
	lastOnHost := map[string]string{}
	for _, r := range req.GetRoles() {
		isPrimary := r.GetName() == req.GetPrimaryRole()
		var roleIDs []string
		for _, hc := range r.GetHosts() {
			h := hc.GetHost()
			if !inGroup[h] {
				continue
			}
			s := step("boot/"+r.GetName()+"/"+h, h, r.GetName(), "boot "+hc.GetContainer().GetName(),
				&agentv1.Operation{Op: &agentv1.Operation_BootApp{BootApp: &agentv1.BootApp{
					Container: hc.GetContainer(), Proxy: r.GetProxy(), Readiness: r.GetReadiness(),
					Stop: r.GetStop(), Rollback: req.GetSkipPull(),
				}}})
			if !isPrimary && len(primaryIDs) > 0 {
				s.AfterAny = slices.Clone(primaryIDs)
			}
			if prev, ok := lastOnHost[h]; ok && !req.GetBoot().GetParallelRoles() {
				s.After = append(s.After, prev)
			}
			lastOnHost[h] = s.Id
			roleIDs = append(roleIDs, s.Id)
			p.Steps = append(p.Steps, s)
		}
		if isPrimary {
			primaryIDs = roleIDs
		}
	}
	return p
}

func step(id, host, role, action string, op *agentv1.Operation) *deployv1.Step {
	return &deployv1.Step{Id: id, Host: host, Role: role, Action: action, Op: op}
}

// AppHosts returns the hosts of every role, hosts carrying the primary role
// first, each once, in the order deploy.yml names them.
func AppHosts(req *deployv1.Request) []string {
	var primary, rest []string
	seen := map[string]bool{}
	for _, r := range req.GetRoles() {
		for _, hc := range r.GetHosts() {
			h := hc.GetHost()
			if seen[h] {
				continue
			}
			seen[h] = true
			if r.GetName() == req.GetPrimaryRole() {
				primary = append(primary, h)
			} else {
				rest = append(rest, h)
			}
		}
	}
	return append(primary, rest...)
}

// AllHosts returns app, proxy and accessory hosts, app hosts first, then
// the hosts of a lifecycle command's steps.
func AllHosts(req *deployv1.Request) []string {
	hosts := AppHosts(req)
	seen := map[string]bool{}
	for _, h := range hosts {
		seen[h] = true
	}
	addHost := func(h string) {
		if !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	for _, ph := range req.GetProxyHosts() {
		addHost(ph.GetHost())
	}
	for _, a := range req.GetAccessories() {
		for _, hc := range a.GetHosts() {
			addHost(hc.GetHost())
		}
	}
	for _, h := range lifecycleHosts(req) {
		addHost(h)
	}
	return hosts
}

// Groups slices hosts into boot groups of at most limit hosts (0: one group).
func Groups(hosts []string, limit uint32) [][]string {
	if len(hosts) == 0 {
		return nil
	}
	if limit == 0 || int(limit) >= len(hosts) {
		return [][]string{hosts}
	}
	var groups [][]string
	for i := 0; i < len(hosts); i += int(limit) {
		groups = append(groups, hosts[i:min(i+int(limit), len(hosts))])
	}
	return groups
}

func validate(req *deployv1.Request) error {
	var problems []string
	if req.GetService() == "" {
		problems = append(problems, "service is empty")
	}
	if req.GetVersion() == "" {
		problems = append(problems, "version is empty")
	}
	if req.GetImage() == "" {
		problems = append(problems, "image is empty")
	}
	if len(req.GetRoles()) == 0 {
		problems = append(problems, "no roles")
	}
	for _, r := range req.GetRoles() {
		for _, hc := range r.GetHosts() {
			if hc.GetHost() == "" {
				problems = append(problems, fmt.Sprintf("role %s: a host has no name", r.GetName()))
			}
			if hc.GetContainer() == nil {
				problems = append(problems, fmt.Sprintf("role %s: host %s has no container spec", r.GetName(), hc.GetHost()))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidRequest, strings.Join(problems, "; "))
	}
	return nil
}

// checkFleet names every host without a usable agent.
func checkFleet(req *deployv1.Request, fleet Fleet) error {
	var unknown, down []string
	for _, h := range AllHosts(req) {
		switch fleet.AgentState(h) {
		case AgentUnknown:
			unknown = append(unknown, h)
		case AgentDisconnected:
			down = append(down, h)
		}
	}
	sort.Strings(unknown)
	sort.Strings(down)
	var parts []string
	if len(unknown) > 0 {
		parts = append(parts, fmt.Sprintf("no agent is enrolled for %s (deploy.yml hosts are agent names: start `agent run --name HOST` on each server)",
			strings.Join(unknown, ", ")))
	}
	if len(down) > 0 {
		parts = append(parts, fmt.Sprintf("the agent of %s is not connected (check `kctl agents`)", strings.Join(down, ", ")))
	}
	if len(parts) > 0 {
		return fmt.Errorf("%w: %s", ErrUnplaceable, strings.Join(parts, "; "))
	}
	return nil
}

// Steps returns every step of the plan in order, for progress display.
func Steps(p *deployv1.Plan) []*deployv1.Step {
	var out []*deployv1.Step
	for _, ph := range p.GetPhases() {
		out = append(out, ph.GetSteps()...)
	}
	return out
}
