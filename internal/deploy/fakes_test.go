package deploy_test

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/scheduler"
	"github.com/kctl-dev/kctl/internal/schema"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// agentKeys are the fake agents' encryption keys, one per host name.
var agentKeys = struct {
	sync.Mutex
	m map[string]*sealbox.PrivateKey
}{m: map[string]*sealbox.PrivateKey{}}

// keyFor returns host's agent's encryption key, made on first use.
func keyFor(host string) *sealbox.PrivateKey {
	agentKeys.Lock()
	defer agentKeys.Unlock()
	k, ok := agentKeys.m[host]
	if !ok {
		var err error
		if k, err = sealbox.GenerateKey(); err != nil {
			panic(err)
		}
		agentKeys.m[host] = k
	}
	return k
}

// sealed seals req's secrets to the fake agents, as kctl does, and
// returns it.
func sealed(req *deployv1.Request) *deployv1.Request {
	if err := sealbox.SealRequest(req, func(h string) ([]byte, error) { return keyFor(h).PublicKey(), nil }); err != nil {
		panic(err)
	}
	return req
}

// fakeAgents runs operations in-process. Like a real agent (its journal),
// it runs each command id once however often it is sent; unlike one, it
// knows which deploy step an operation carries out (locate), so runs counts
// executions per step whatever id they came under: a step re-sent under a
// new id runs twice, and maxRuns says so.
type fakeAgents struct {
	mu      sync.Mutex
	states  map[string]scheduler.AgentState
	results map[string]*agentv1.Result
	// runs counts executions per step (stepKey), deliveries every Send
	// per step, repeats of one id included.
	runs, deliveries map[string]int
	// locate names the deploy steps (deploy id/step id) whose operation op
	// is for agent; nil or no match keys a run by agent and operation.
	locate func(agent string, op *agentv1.Operation) []string
	// do decides an operation's result; nil means success.
	do func(agent string, op *agentv1.Operation) *agentv1.Result
	// hold, when set for an agent, keeps its commands pending.
	hold map[string]bool
	// pending are held commands by agent.
	pending map[string][]held
	notify  func()
	// forgotten lists the commands Forget deleted.
	forgotten []string
	// sent holds the last operation sent per "<agent>/<id>".
	sent map[string]*agentv1.Operation
}

type held struct {
	id string
	op *agentv1.Operation
}

func newFakeAgents(hosts ...string) *fakeAgents {
	f := &fakeAgents{
		states: map[string]scheduler.AgentState{}, results: map[string]*agentv1.Result{},
		runs: map[string]int{}, deliveries: map[string]int{}, hold: map[string]bool{}, pending: map[string][]held{},
		sent: map[string]*agentv1.Operation{},
	}
	for _, h := range hosts {
		f.states[h] = scheduler.AgentConnected
	}
	return f
}

func (f *fakeAgents) AgentState(name string) scheduler.AgentState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[name]
}

func (f *fakeAgents) setState(name string, s scheduler.AgentState) {
	f.mu.Lock()
	f.states[name] = s
	f.mu.Unlock()
}

func (f *fakeAgents) Send(ctx context.Context, agent, id string, op *agentv1.Operation) error {
	f.mu.Lock()
	if _, ok := f.states[agent]; !ok {
		f.mu.Unlock()
		return fmt.Errorf("no agent %s", agent)
	}
	// Like a real agent, open the secrets sealed to it.
	op = proto.Clone(op).(*agentv1.Operation)
	if err := sealbox.OpenOperation(op, agent, keyFor(agent)); err != nil {
		f.mu.Unlock()
		return err
	}
	f.sent[agent+"/"+id] = op
	f.deliveries[f.stepKey(agent, op)]++
	if _, done := f.results[agent+"/"+id]; done {
		f.mu.Unlock()
		return nil
	}
	if f.hold[agent] {
		f.pending[agent] = append(f.pending[agent], held{id, op})
		f.mu.Unlock()
		return nil
	}
	f.mu.Unlock()
	f.execute(agent, id, op)
	return nil
}

func (f *fakeAgents) execute(agent, id string, op *agentv1.Operation) {
	res := &agentv1.Result{Ok: true}
	if f.do != nil {
		if r := f.do(agent, op); r != nil {
			res = r
		}
	}
	f.mu.Lock()
	key := agent + "/" + id
	if _, done := f.results[key]; !done {
		f.runs[f.stepKey(agent, op)]++
		f.results[key] = res
	}
	notify := f.notify
	f.mu.Unlock()
	if notify != nil {
		notify()
	}
}

// release runs the held commands of agent and stops holding.
func (f *fakeAgents) release(agent string) {
	f.mu.Lock()
	f.hold[agent] = false
	cmds := f.pending[agent]
	f.pending[agent] = nil
	f.mu.Unlock()
	for _, c := range cmds {
		f.execute(agent, c.id, c.op)
	}
}

func (f *fakeAgents) Forget(ctx context.Context, cmds []deploy.AgentCommand) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cmds {
		f.forgotten = append(f.forgotten, c.Agent+"/"+c.ID)
	}
	return nil
}

func (f *fakeAgents) Result(agent, id string) (*agentv1.Result, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.results[agent+"/"+id]
	return r, ok
}

// stepKey names the step op carries out on agent: its deploy and step ids
// (all of them, should two steps carry the same operation), found by
// locate, whatever command id op was sent under. Callers hold f.mu.
func (f *fakeAgents) stepKey(agent string, op *agentv1.Operation) string {
	if f.locate != nil {
		if steps := f.locate(agent, op); len(steps) > 0 {
			return strings.Join(steps, "+")
		}
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(deploy.RedactOperation(op))
	return "unlocated:" + agent + ":" + string(b)
}

// delivered reports how often step (deploy id/step id) was sent.
func (f *fakeAgents) delivered(step string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deliveries[step]
}

// maxRuns is the most executions of one step.
func (f *fakeAgents) maxRuns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := 0
	for _, n := range f.runs {
		m = max(m, n)
	}
	return m
}

// locateSteps finds the plan steps, in the deploy records r holds, whose
// operation is op on agent: recorded operations hold secret references
// where op holds the values, so both are compared redacted.
func locateSteps(r schema.Reader, agent string, op *agentv1.Operation) []string {
	want := deploy.RedactOperation(op)
	var out []string
	for _, rec := range schema.Deploys.Values(r, "") {
		for _, ph := range rec.GetPlan().GetPhases() {
			for _, st := range ph.GetSteps() {
				if st.GetHost() == agent && proto.Equal(deploy.RedactOperation(st.GetOp()), want) {
					out = append(out, rec.GetId()+"/"+st.GetId())
				}
			}
		}
	}
	return out
}
