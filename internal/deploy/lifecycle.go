package deploy

import (
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/scheduler"
	"github.com/kctl-dev/kctl/internal/schema"
)

// Lifecycle implements opsv1.LifecycleService on every controller: Kamal's
// lifecycle commands are recorded and run as small deploys by Deploys (the
// same lock, runner, failover and audit), and the read-only views ask the
// agents for their facts directly.
type Lifecycle struct {
	opsv1.UnimplementedLifecycleServiceServer

	Deploys *Service
	// InspectTimeout bounds how long a read waits for slow hosts when the
	// call has no earlier deadline; 10 s when zero.
	InspectTimeout time.Duration
}

var _ opsv1.LifecycleServiceServer = (*Lifecycle)(nil)

// Details asks the hosts for their containers. Errors: see inspect.
func (l *Lifecycle) Details(ctx context.Context, in *opsv1.InspectRequest) (*opsv1.InspectResponse, error) {
	return l.inspect(ctx, in)
}

// Containers asks the hosts for their containers. Errors: see inspect.
func (l *Lifecycle) Containers(ctx context.Context, in *opsv1.InspectRequest) (*opsv1.InspectResponse, error) {
	return l.inspect(ctx, in)
}

// Images asks the hosts for their containers and images. Errors: see
// inspect.
func (l *Lifecycle) Images(ctx context.Context, in *opsv1.InspectRequest) (*opsv1.InspectResponse, error) {
	return l.inspect(ctx, in)
}

// Version asks the hosts for their containers. Errors: see inspect.
func (l *Lifecycle) Version(ctx context.Context, in *opsv1.InspectRequest) (*opsv1.InspectResponse, error) {
	return l.inspect(ctx, in)
}

// inspect sends GatherFacts to every host at once and waits for the
// answers until the deadline; hosts without a connected agent or without
// an answer in time are reported with an error. Errors: InvalidArgument (no
// hosts), Unavailable (the commands could not be recorded).
func (l *Lifecycle) inspect(ctx context.Context, in *opsv1.InspectRequest) (*opsv1.InspectResponse, error) {
	if len(in.GetHosts()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no hosts to ask")
	}
	timeout := l.InspectTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	agents := l.Deploys.Agents
	key := "inspect." + NewID(l.Deploys.now())
	op := &agentv1.Operation{Op: &agentv1.Operation_GatherFacts{GatherFacts: &agentv1.GatherFacts{ImageRepositories: in.GetImageRepositories()}}}
	out := make([]*opsv1.HostFacts, len(in.GetHosts()))
	var sent []AgentCommand
	var mu sync.Mutex // guards sent
	var wg sync.WaitGroup
	for i, h := range in.GetHosts() {
		out[i] = &opsv1.HostFacts{Host: h}
		switch agents.AgentState(h) {
		case scheduler.AgentUnknown:
			out[i].Error = "no agent is enrolled for " + h
			continue
		case scheduler.AgentDisconnected:
			out[i].Error = "the agent of " + h + " is not connected"
			continue
		}
		wg.Go(func() {
			if err := agents.Send(ctx, h, key, op); err != nil {
				out[i].Error = "could not send to agent: " + err.Error()
				return
			}
			mu.Lock()
			sent = append(sent, AgentCommand{Agent: h, ID: key})
			mu.Unlock()
		})
	}
	wg.Wait()
	defer func() {
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer fcancel()
		_ = agents.Forget(fctx, sent)
	}()
	l.collect(ctx, key, out)
	return &opsv1.InspectResponse{Hosts: out}, nil
}

// collect fills in every pending host's facts as results arrive, until all
// have answered or ctx ends.
func (l *Lifecycle) collect(ctx context.Context, key string, out []*opsv1.HostFacts) {
	changes, stop := l.Deploys.Store.Watch()
	defer stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		pending := 0
		for _, hf := range out {
			if hf.Error != "" || hf.Facts != nil {
				continue
			}
			res, ok := l.Deploys.Agents.Result(hf.GetHost(), key)
			switch {
			case !ok:
				pending++
			case !res.GetOk():
				hf.Error = res.GetError()
			default:
				hf.Facts = res.GetFacts()
				if hf.Facts == nil {
					hf.Facts = &agentv1.Facts{}
				}
			}
		}
		if pending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			for _, hf := range out {
				if hf.Error == "" && hf.Facts == nil {
					hf.Error = "no answer from the agent in time"
				}
			}
			return
		case <-changes:
		case <-tick.C:
		}
	}
}

// App records an `app …` command. Errors: see action.
func (l *Lifecycle) App(ctx context.Context, in *opsv1.ActionRequest) (*opsv1.ActionResponse, error) {
	return l.action(ctx, in, "app ", appOp)
}

// Proxy records a `proxy …` command. Errors: see action.
func (l *Lifecycle) Proxy(ctx context.Context, in *opsv1.ActionRequest) (*opsv1.ActionResponse, error) {
	return l.action(ctx, in, "proxy ", proxyOp)
}

// Accessory records an `accessory …` command. Errors: see action.
func (l *Lifecycle) Accessory(ctx context.Context, in *opsv1.ActionRequest) (*opsv1.ActionResponse, error) {
	return l.action(ctx, in, "accessory ", accessoryOp)
}

// Remove records `remove` (app, proxy, accessories, on every host). Errors:
// see action.
func (l *Lifecycle) Remove(ctx context.Context, in *opsv1.ActionRequest) (*opsv1.ActionResponse, error) {
	return l.action(ctx, in, "remove", func(op *agentv1.Operation) bool {
		return appOp(op) || proxyOp(op) || accessoryOp(op)
	})
}

// Operations each kind of command may carry.
func appOp(op *agentv1.Operation) bool {
	switch o := op.GetOp().(type) {
	case *agentv1.Operation_AppControl, *agentv1.Operation_StopStale, *agentv1.Operation_BootApp,
		*agentv1.Operation_TagLatest, *agentv1.Operation_EnsureNetwork, *agentv1.Operation_Prune:
		return true
	case *agentv1.Operation_ProxyControl:
		a := o.ProxyControl.GetAction()
		return a == agentv1.ProxyControl_ACTION_STOP || a == agentv1.ProxyControl_ACTION_RESUME || a == agentv1.ProxyControl_ACTION_REMOVE
	}
	return false
}

func proxyOp(op *agentv1.Operation) bool {
	switch op.GetOp().(type) {
	case *agentv1.Operation_BootProxy, *agentv1.Operation_ProxyControl, *agentv1.Operation_EnsureNetwork:
		return true
	}
	return false
}

func accessoryOp(op *agentv1.Operation) bool {
	switch op.GetOp().(type) {
	case *agentv1.Operation_BootAccessory, *agentv1.Operation_AccessoryControl, *agentv1.Operation_EnsureNetwork, *agentv1.Operation_PullImage:
		return true
	}
	return false
}

// action checks that the request is a command of the method's kind (its
// name starts with kind; every operation passes allowed) and records it
// under the service's deploy lock. `app boot` is a deploy's request (boot
// phases only) rather than a lifecycle's. Errors: InvalidArgument, and
// those of DeployService/Submit.
func (l *Lifecycle) action(ctx context.Context, in *opsv1.ActionRequest, kind string, allowed func(*agentv1.Operation) bool) (*opsv1.ActionResponse, error) {
	req := in.GetRequest()
	if !strings.HasPrefix(req.GetCommand(), kind) {
		return nil, status.Errorf(codes.InvalidArgument, "%q is not a %s command", req.GetCommand(), strings.TrimSpace(kind))
	}
	if req.GetLifecycle() == nil {
		if req.GetCommand() != "app boot" {
			return nil, status.Errorf(codes.InvalidArgument, "%s: the request has no lifecycle phases", req.GetCommand())
		}
		req = proto.Clone(req).(*deployv1.Request)
		req.SkipPull, req.SkipProxyBoot, req.SkipPrune = true, true, true
	}
	for _, ph := range req.GetLifecycle().GetPhases() {
		for _, s := range ph.GetSteps() {
			if !allowed(s.GetOp()) {
				return nil, status.Errorf(codes.InvalidArgument, "%s: step %q on %s is not a %s operation", req.GetCommand(), s.GetAction(), s.GetHost(), strings.TrimSpace(kind))
			}
		}
	}
	rec, err := l.Deploys.submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return &opsv1.ActionResponse{Deploy: rec}, nil
}

// Desired lists a service's recorded desired state. Errors: Unavailable,
// Canceled, DeadlineExceeded.
func (l *Lifecycle) Desired(ctx context.Context, in *opsv1.DesiredRequest) (*opsv1.DesiredResponse, error) {
	if err := l.Deploys.Store.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &opsv1.DesiredResponse{States: schema.Desired.Values(l.Deploys.Store, schema.DesiredPrefix(in.GetService(), in.GetDestination()))}, nil
}

// finishedAction is the audit action of a deploy record's end: "deploy
// finished" for a deploy (rollback, setup), "<command> finished" for a
// lifecycle command ("app maintenance finished"), `app boot` included.
func finishedAction(req *deployv1.Request) string {
	if req.GetLifecycle() != nil || req.GetCommand() == "app boot" {
		return req.GetCommand() + " finished"
	}
	return "deploy finished"
}

// desiredMutations records the desired state req sets: a lifecycle
// command's own, or, for a deploy (and rollback, setup, app boot), running
// for every role on every host it boots.
func desiredMutations(req *deployv1.Request, operator string, now time.Time) []*raftcmdv1.Mutation {
	var out []*raftcmdv1.Mutation
	put := func(d *deployv1.DesiredState) {
		d.Operator, d.UpdatedUnixMillis, d.Command = operator, now.UnixMilli(), req.GetCommand()
		key := schema.DesiredKey(d.GetService(), d.GetDestination(), d.GetRole(), d.GetHost())
		out = append(out, schema.Desired.Put(key, d))
	}
	if lc := req.GetLifecycle(); lc != nil {
		for _, d := range lc.GetDesired() {
			put(proto.Clone(d).(*deployv1.DesiredState))
		}
		return out
	}
	for _, r := range req.GetRoles() {
		for _, hc := range r.GetHosts() {
			put(&deployv1.DesiredState{Service: req.GetService(), Destination: req.GetDestination(),
				Role: r.GetName(), Host: hc.GetHost(), State: deployv1.DesiredState_STATE_RUNNING})
		}
	}
	return out
}
