package deploy_test

import (
	"context"
	"fmt"
	"sync"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

// fakeAgents runs operations in-process. Each command id runs once, however
// often it is sent; runs counts real executions per id.
type fakeAgents struct {
	mu      sync.Mutex
	states  map[string]scheduler.AgentState
	results map[string]*agentv1.Result
	runs    map[string]int
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
		runs: map[string]int{}, hold: map[string]bool{}, pending: map[string][]held{},
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
	f.sent[agent+"/"+id] = op
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
		f.runs[key]++
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

func (f *fakeAgents) maxRuns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := 0
	for _, n := range f.runs {
		m = max(m, n)
	}
	return m
}
