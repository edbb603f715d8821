// Package exec holds the contracts between the agent's session, which
// receives operations from the controller, and the runtime that carries them
// out on the server (internal/agent/docker on a real engine, fakes in tests
// and benchmarks).
package exec

import (
	"context"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// Runtime carries out one operation. Every operation is idempotent: running
// it again after a crash, a reconnect or a duplicate delivery converges on the
// same state. Do returns a Result for outcomes the operator should see (a
// failed health check is a Result with OK false); it returns an error only
// when the operation could not be attempted (the engine is unreachable).
type Runtime interface {
	Do(ctx context.Context, op *agentv1.Operation) (*agentv1.Result, error)
}

// RuntimeFunc adapts a function to Runtime.
type RuntimeFunc func(ctx context.Context, op *agentv1.Operation) (*agentv1.Result, error)

// Do calls f.
func (f RuntimeFunc) Do(ctx context.Context, op *agentv1.Operation) (*agentv1.Result, error) {
	return f(ctx, op)
}

var _ Runtime = RuntimeFunc(nil)
