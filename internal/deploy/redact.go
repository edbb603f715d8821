package deploy

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/sealbox"
)

// Secret-bearing fields are container secret env values and file contents
// (TLS keys, accessory files), registry credentials and proxy file
// contents. Three things are done to them, by one walk:
//
//   - Redact and RedactOperation replace them with Redacted (or drop file
//     contents) wherever a record leaves the controller or enters the audit;
//   - seal replaces them, in the plan stored with a deploy, by references
//     to the same field of the deploy's Secrets record (the request with
//     secrets), so the stored plan holds every step's operation and no
//     secret;
//   - resolve puts the values back from the Secrets record when the runner
//     sends a step, so it never plans again.

// Redacted replaces a secret value wherever a record leaves the controller.
const Redacted = "[REDACTED]"

// refPrefix starts a reference to a field of the Secrets record: the rest is
// the field's path (secretPaths).
const refPrefix = "kctl-secret-ref:"

// ErrSecretRef is returned when a sealed operation names a secret its
// deploy's Secrets record does not hold.
var ErrSecretRef = errors.New("deploy: unresolvable secret reference")

// secretField is one secret-bearing field (the walker is internal/sealbox's,
// shared with kctl, which seals, and the agent, which opens).
type secretField = sealbox.Field

// visitFunc is called with every secret-bearing field and its path.
type visitFunc = sealbox.VisitFunc

// visitRequest visits every secret-bearing field of req.
func visitRequest(req *deployv1.Request, visit visitFunc) { sealbox.VisitRequest(req, visit) }

// visitOperation visits every secret-bearing field of op.
func visitOperation(op *agentv1.Operation, visit visitFunc) { sealbox.VisitOperation(op, visit) }

// redactField replaces a secret: strings by Redacted, file contents by
// nothing. An empty value stays empty.
func redactField(_ string, f secretField) {
	switch {
	case f.IsBytes():
		f.Set("")
	case f.Get() != "":
		f.Set(Redacted)
	}
}

// RedactOperation returns a copy of op without secret values: secret env,
// registry credentials and file contents (TLS keys, accessory files).
func RedactOperation(op *agentv1.Operation) *agentv1.Operation {
	if op == nil {
		return nil
	}
	op = proto.Clone(op).(*agentv1.Operation)
	visitOperation(op, redactField)
	op.SealedSecrets = nil
	return op
}

// Redact returns a copy of req without secret values: container secret env
// values, registry credentials and file contents (TLS keys, accessory files).
func Redact(req *deployv1.Request) *deployv1.Request {
	r := proto.Clone(req).(*deployv1.Request)
	visitRequest(r, redactField)
	r.SealedSecrets = nil
	return r
}

// sealPlan returns a copy of plan whose operations hold, instead of each
// secret value, a reference to the field of req (the deploy's Secrets
// record) that holds the same value.
func sealPlan(plan *deployv1.Plan, req *deployv1.Request) (*deployv1.Plan, error) {
	paths := map[string]string{} // value → first path holding it
	visitRequest(req, func(path string, f secretField) {
		if v := f.Get(); v != "" {
			if _, ok := paths[v]; !ok {
				paths[v] = path
			}
		}
	})
	out := proto.Clone(plan).(*deployv1.Plan)
	var err error
	for _, ph := range out.GetPhases() {
		for _, s := range ph.GetSteps() {
			visitOperation(s.GetOp(), func(_ string, f secretField) {
				v := f.Get()
				if v == "" {
					return
				}
				path, ok := paths[v]
				if !ok {
					// Operations are built from the request: a secret it
					// does not hold would be a scheduler bug. Fail the
					// submit rather than store the value.
					err = fmt.Errorf("deploy: step %s carries a secret the request does not hold", s.GetId())
					f.Set(Redacted)
					return
				}
				f.Set(refPrefix + path)
			})
		}
	}
	return out, err
}

// resolveOperation returns a copy of a sealed op with every reference
// replaced by the value req (the deploy's Secrets record) holds there.
func resolveOperation(op *agentv1.Operation, req *deployv1.Request) (*agentv1.Operation, error) {
	values := map[string]string{}
	visitRequest(req, func(path string, f secretField) { values[path] = f.Get() })
	op = proto.Clone(op).(*agentv1.Operation)
	var err error
	visitOperation(op, func(_ string, f secretField) {
		v := f.Get()
		if v == "" {
			return
		}
		path, ok := strings.CutPrefix(v, refPrefix)
		if !ok {
			err = fmt.Errorf("%w: a secret field holds no reference", ErrSecretRef)
			return
		}
		val, ok := values[path]
		if !ok {
			err = fmt.Errorf("%w: %s", ErrSecretRef, path)
			return
		}
		f.Set(val)
	})
	if err != nil {
		return nil, err
	}
	return op, nil
}
