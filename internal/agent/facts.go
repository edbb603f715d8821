package agent

import (
	"context"
	"os"
	"runtime"
	"strings"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/agent/exec"
)

// BasicFacts reports what the agent knows without a container engine.
func BasicFacts() *agentv1.Facts {
	host, _ := os.Hostname()
	return &agentv1.Facts{Hostname: host, Os: osName(), Arch: runtime.GOARCH}
}

func osName() string {
	b, err := os.ReadFile("/etc/os-release")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				return runtime.GOOS + " (" + strings.Trim(v, `"`) + ")"
			}
		}
	}
	return runtime.GOOS
}

// FakeRuntime answers Noop and GatherFacts and refuses everything else. The
// benchmarks, the tests and cmd/agent (until a Docker runtime is plugged in)
// use it. DockerVersion, if set, is called to fill Facts.DockerVersion.
type FakeRuntime struct {
	DockerVersion func(ctx context.Context) string
	// Containers and Images are reported in every GatherFacts answer, as a
	// server running them would (`kctl details` benchmarks).
	Containers []*agentv1.ContainerFact
	Images     []*agentv1.ImageFact
}

var _ exec.Runtime = (*FakeRuntime)(nil)

// Do implements exec.Runtime.
func (f *FakeRuntime) Do(ctx context.Context, op *agentv1.Operation) (*agentv1.Result, error) {
	switch op.GetOp().(type) {
	case *agentv1.Operation_Noop:
		return &agentv1.Result{Ok: true, Detail: op.GetNoop().GetPayload()}, nil
	case *agentv1.Operation_GatherFacts:
		facts := BasicFacts()
		if f.DockerVersion != nil {
			facts.DockerVersion = f.DockerVersion(ctx)
		}
		facts.Containers, facts.Images = f.Containers, f.Images
		return &agentv1.Result{Ok: true, Facts: facts}, nil
	default:
		return &agentv1.Result{Ok: false, Error: "agent: this agent runs without a container runtime"}, nil
	}
}
