package kctl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
	"github.com/kctl-dev/kctl/internal/kctl/progress"
)

// Kamal's lifecycle commands (`app stop`, `proxy reboot`, …) are planned
// here from deploy.yml, as Kamal plans its SSH commands, and recorded by
// the controllers as small deploys (internal/deploy/lifecycle.go): under
// the service's deploy lock, run by the leader, every step audited, the
// desired state they set kept in Raft. The read-only views ask the agents
// through the same service.

// The LifecycleService methods commands go through, each with its own
// access rule.
var (
	appAction       = method(opsv1.LifecycleServiceClient.App)
	proxyAction     = method(opsv1.LifecycleServiceClient.Proxy)
	accessoryAction = method(opsv1.LifecycleServiceClient.Accessory)
	removeAction    = method(opsv1.LifecycleServiceClient.Remove)

	detailsMethod    = method(opsv1.LifecycleServiceClient.Details)
	containersMethod = method(opsv1.LifecycleServiceClient.Containers)
	imagesMethod     = method(opsv1.LifecycleServiceClient.Images)
	versionMethod    = method(opsv1.LifecycleServiceClient.Version)
)

// method adapts a client method expression to the shape commands call.
func method[Req, Resp any](m func(opsv1.LifecycleServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) func(context.Context, opsv1.LifecycleServiceClient, Req) (Resp, error) {
	return func(ctx context.Context, c opsv1.LifecycleServiceClient, r Req) (Resp, error) { return m(c, ctx, r) }
}

// actionFunc is the LifecycleService method a command goes through (each
// has its own access rule).
type actionFunc func(context.Context, opsv1.LifecycleServiceClient, *opsv1.ActionRequest) (*opsv1.ActionResponse, error)

// lifecyclePlan is one lifecycle command planned from deploy.yml.
type lifecyclePlan struct {
	command string // Kamal's name: "app stop"
	call    actionFunc
	phases  []*deployv1.Phase
	desired []*deployv1.DesiredState
	// pre and post are the hooks run around each phase that names group
	// hosts (`proxy reboot`); empty: none.
	pre, post string
}

// add appends a step to the plan's last phase (starting one if needed).
func (pl *lifecyclePlan) add(host, role, action string, op *agentv1.Operation) {
	if len(pl.phases) == 0 {
		pl.phase(pl.command)
	}
	ph := pl.phases[len(pl.phases)-1]
	ph.Steps = append(ph.Steps, &deployv1.Step{Host: host, Role: role, Action: action, Op: op})
}

// phase starts a new phase: its steps run after the previous phase's.
func (pl *lifecyclePlan) phase(name string, groupHosts ...string) {
	pl.phases = append(pl.phases, &deployv1.Phase{Name: name, GroupHosts: groupHosts})
}

// want records the desired state the command sets for role on host.
func (pl *lifecyclePlan) want(p *project, role, host string, state deployv1.DesiredState_State, message string) {
	pl.desired = append(pl.desired, &deployv1.DesiredState{
		Service: p.cfg.Service, Destination: p.cfg.Destination, Role: role, Host: host, State: state, Message: message,
	})
}

func (pl *lifecyclePlan) empty() bool {
	for _, ph := range pl.phases {
		if len(ph.GetSteps()) > 0 {
			return false
		}
	}
	return true
}

// lifecycleClient runs fn against the lifecycle service of whichever
// controller answers.
func (g *globals) lifecycleClient(ctx context.Context, fn func(context.Context, opsv1.LifecycleServiceClient) error) error {
	return g.conn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		return fn(ctx, opsv1.NewLifecycleServiceClient(cc))
	})
}

// project loads deploy.yml with the global options; version is the
// command's --version (empty: none needed).
func (g *globals) project(cmd *cobra.Command, version string) (*project, error) {
	t := g.target
	t.version = version
	p, err := loadProject(cmd.Context(), cmd, t, false)
	if err != nil {
		return nil, describeErr(err)
	}
	return p, nil
}

// runPlan records the plan under the deploy lock (waiting for it with
// --lock-wait) and follows it to its end, running its hooks.
func (g *globals) runPlan(cmd *cobra.Command, p *project, pl *lifecyclePlan) error {
	if pl.empty() {
		fmt.Fprintf(g.out(cmd), "Nothing to do for %s on the selected hosts\n", pl.command)
		return nil
	}
	req := &deployv1.Request{
		Command: pl.command, Service: p.cfg.Service, Destination: p.cfg.Destination, Version: p.cfg.Version,
		Lifecycle: &deployv1.Lifecycle{Phases: pl.phases, Desired: pl.desired},
	}
	return g.runAction(cmd, p, pl.call, req, pl.pre, pl.post)
}

// runAction submits req through call under the lock and watches it.
func (g *globals) runAction(cmd *cobra.Command, p *project, call actionFunc, req *deployv1.Request, pre, post string) error {
	if g.planned != nil {
		return g.planned(req)
	}
	if err := g.sealSecrets(cmd.Context(), req); err != nil {
		return err
	}
	var rec *deployv1.Record
	err := withLockWait(cmd, g.lock, func(ctx context.Context) error {
		return g.lifecycleClient(ctx, func(ctx context.Context, c opsv1.LifecycleServiceClient) error {
			resp, err := call(ctx, c, &opsv1.ActionRequest{Request: req})
			rec = resp.GetDeploy()
			return err
		})
	})
	if err != nil {
		return err
	}
	final, err := g.watchHooks(cmd, rec.GetId(), p, req.GetCommand(), pre, post)
	if err != nil {
		return err
	}
	if final.GetState() != deployv1.State_STATE_SUCCEEDED {
		return fmt.Errorf("%s %s: %s", req.GetCommand(), progress.StateName(final.GetState()), firstLine(final.GetError()))
	}
	return nil
}

// roleHost is one role on one host.
type roleHost struct{ role, host string }

// roleHosts lists the selected roles on their selected hosts, in Kamal's
// order (primary role first).
func roleHosts(p *project) ([]roleHost, error) {
	sel, err := selectedHosts(p.cfg, p.selection())
	if err != nil {
		return nil, err
	}
	var out []roleHost
	for _, r := range p.cfg.Roles {
		for _, h := range sel[r.Name] {
			out = append(out, roleHost{r.Name, h})
		}
	}
	return out, nil
}

// proxyHosts are the selected hosts that run kamal-proxy (Kamal's
// KAMAL.proxy_hosts).
func proxyHosts(p *project) []string {
	sel := p.selection()
	roleOf := map[string]bool{}
	if len(sel.Roles) > 0 {
		if s, err := selectedHosts(p.cfg, sel); err == nil {
			for _, hs := range s {
				for _, h := range hs {
					roleOf[h] = true
				}
			}
		}
	}
	var out []string
	for _, h := range p.cfg.ProxyHosts() {
		if (len(sel.Hosts) == 0 || matchAny(sel.Hosts, h)) && (len(sel.Roles) == 0 || roleOf[h]) {
			out = append(out, h)
		}
	}
	if sel.Primary && len(out) > 1 {
		out = out[:1]
	}
	return out
}

// inspectMethod is one of the LifecycleService's reads.
type inspectMethod = func(context.Context, opsv1.LifecycleServiceClient, *opsv1.InspectRequest) (*opsv1.InspectResponse, error)

// inspect asks the hosts for their facts (and the images of repos) through
// method, a LifecycleService read.
func (g *globals) inspect(ctx context.Context, hosts []string, repos []string, method inspectMethod) ([]*opsv1.HostFacts, error) {
	if len(hosts) == 0 {
		return nil, nil
	}
	var resp *opsv1.InspectResponse
	err := g.callConn(ctx, func(ctx context.Context, c opsv1.LifecycleServiceClient) (err error) {
		resp, err = method(ctx, c, &opsv1.InspectRequest{Hosts: hosts, ImageRepositories: repos})
		return err
	})
	return resp.GetHosts(), err
}

// inspectRoles asks the hosts of the selected roles through method.
func (g *globals) inspectRoles(ctx context.Context, p *project, repos []string, method inspectMethod) ([]roleHost, []*opsv1.HostFacts, error) {
	rhs, err := roleHosts(p)
	if err != nil {
		return nil, nil, err
	}
	reports, err := g.inspect(ctx, hostsOf(rhs), repos, method)
	return rhs, reports, err
}

// appView prints what the selected roles' hosts answered a read.
type appView func(w io.Writer, p *project, rhs []roleHost, reports []*opsv1.HostFacts)

// newAppViewCmd builds a read-only `kctl app` command: it asks the selected
// roles' hosts through method (with the images of the repositories repos
// names, if repos is set), prints the answers with show, then names the
// hosts that did not answer.
func newAppViewCmd(g *globals, use, short string, method inspectMethod, repos func(*project) []string, show appView) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			var rs []string
			if repos != nil {
				rs = repos(p)
			}
			rhs, reports, err := g.inspectRoles(cmd.Context(), p, rs, method)
			if err != nil {
				return err
			}
			show(cmd.OutOrStdout(), p, rhs, reports)
			return hostErrors(reports)
		},
	}
}

// callConn is lifecycleClient bounded by --timeout.
func (g *globals) callConn(ctx context.Context, fn func(context.Context, opsv1.LifecycleServiceClient) error) error {
	ctx, cancel := context.WithTimeout(ctx, g.deadline)
	defer cancel()
	return g.lifecycleClient(ctx, fn)
}

// putsByHost prints one host's output as Kamal's puts_by_host does:
// "<Type> Host: <host>", the output, a blank line.
func putsByHost(w io.Writer, kind, host, out string) {
	fmt.Fprintf(w, "%s Host: %s\n%s\n\n", kind, host, strings.TrimRight(out, "\n"))
}

// containerFilter selects containers by Kamal's labels; empty values match
// anything except destination, which must match exactly (Kamal filters
// `label=destination=` for no destination).
type containerFilter struct {
	service, role, destination string
	anyDestination             bool
	runningOnly                bool
	proxy                      bool // kamal-proxy instead of labels
}

// proxyImageTitle is the label kamal-proxy's image (and so its container)
// carries.
const proxyImageTitle = "org.opencontainers.image.title"

func (f containerFilter) match(c *agentv1.ContainerFact) bool {
	if f.runningOnly && c.GetState() != "running" && c.GetState() != "restarting" {
		return false
	}
	if f.proxy {
		return c.GetName() == "kamal-proxy" || c.GetLabels()[proxyImageTitle] == "kamal-proxy"
	}
	l := c.GetLabels()
	return l["service"] == f.service && (f.role == "" || l["role"] == f.role) &&
		(f.anyDestination || l["destination"] == f.destination)
}

// containerTable prints containers like `docker ps`.
func containerTable(list []*agentv1.ContainerFact) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %-40s %-12s %s\n", "CONTAINER ID", "IMAGE", "STATUS", "NAMES")
	for _, c := range list {
		id := c.GetId()
		if len(id) > 12 {
			id = id[:12]
		}
		st := c.GetState()
		if c.GetHealth() != "" {
			st += " (" + c.GetHealth() + ")"
		}
		fmt.Fprintf(&b, "%-14s %-40s %-12s %s\n", id, c.GetImage(), st, c.GetName())
	}
	return b.String()
}

func filterContainers(facts *agentv1.Facts, f containerFilter) []*agentv1.ContainerFact {
	var out []*agentv1.ContainerFact
	for _, c := range facts.GetContainers() {
		if f.match(c) {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetCreatedUnix() > out[j].GetCreatedUnix() })
	return out
}

// hostErrors collects the hosts that did not answer; printed, they fail the
// command after every answer was shown.
func hostErrors(reports []*opsv1.HostFacts) error {
	var failed []string
	for _, r := range reports {
		if r.GetError() != "" {
			failed = append(failed, r.GetHost()+": "+r.GetError())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("no answer from %d of %d hosts:\n  %s", len(failed), len(reports), strings.Join(failed, "\n  "))
	}
	return nil
}

// confirm asks Kamal's confirmation question unless -y was given; Kamal
// says "Aborted" and exits 0 on anything but "y".
func confirm(cmd *cobra.Command, yes bool, question string) bool {
	if yes {
		return true
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s [y, N] (N) ", question)
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if strings.TrimSpace(line) == "y" {
		return true
	}
	fmt.Fprintln(cmd.OutOrStdout(), "Aborted")
	return false
}

// hostsOf lists the hosts of role-host pairs, each once, in order.
func hostsOf(rhs []roleHost) []string {
	var out []string
	seen := map[string]bool{}
	for _, rh := range rhs {
		if !seen[rh.host] {
			seen[rh.host] = true
			out = append(out, rh.host)
		}
	}
	return out
}

// factsByHost maps each answering host to its facts.
func factsByHost(reports []*opsv1.HostFacts) map[string]*agentv1.Facts {
	out := map[string]*agentv1.Facts{}
	for _, r := range reports {
		if r.GetError() == "" {
			out[r.GetHost()] = r.GetFacts()
		}
	}
	return out
}

// currentVersion is the role's running version on a host as Kamal finds it
// (the newest running container of the role, its name without the
// prefix), or "".
func currentVersion(p *project, f *agentv1.Facts, role string) string {
	list := filterContainers(f, containerFilter{service: p.cfg.Service, role: role, destination: p.cfg.Destination, runningOnly: true})
	prefix := p.cfg.ContainerPrefix(role) + "-"
	for _, c := range list {
		if v, ok := strings.CutPrefix(c.GetName(), prefix); ok && !strings.Contains(v, "_replaced_") {
			return v
		}
	}
	return ""
}
