package deploy

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
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

// secretField is one secret-bearing field: a string or a bytes field.
type secretField struct {
	str *string
	b   *[]byte
}

func (f secretField) get() string {
	if f.str != nil {
		return *f.str
	}
	return string(*f.b)
}

func (f secretField) set(v string) {
	if f.str != nil {
		*f.str = v
		return
	}
	*f.b = []byte(v)
}

// visitFunc is called with every secret-bearing field and its path.
type visitFunc func(path string, f secretField)

func visitContainer(c *specv1.Container, path string, visit visitFunc) {
	if c == nil {
		return
	}
	for i, kv := range c.GetSecretEnv() {
		visit(fmt.Sprintf("%s/secret_env/%d", path, i), secretField{str: &kv.Value})
	}
	for i, f := range c.GetFiles() {
		visit(fmt.Sprintf("%s/files/%d", path, i), secretField{b: &f.Content})
	}
}

func visitAuth(a *specv1.RegistryAuth, path string, visit visitFunc) {
	if a == nil {
		return
	}
	visit(path+"/username", secretField{str: &a.Username})
	visit(path+"/password", secretField{str: &a.Password})
}

func visitProxy(p *specv1.ProxyDeploy, path string, visit visitFunc) {
	for i, f := range p.GetFiles() {
		visit(fmt.Sprintf("%s/files/%d", path, i), secretField{b: &f.Content})
	}
}

// visitRequest visits every secret-bearing field of req. Paths index into
// the request's lists, so a path names one field of one stored record
// whatever binary reads it.
func visitRequest(req *deployv1.Request, visit visitFunc) {
	visitAuth(req.GetRegistry(), "registry", visit)
	for i, role := range req.GetRoles() {
		for j, hc := range role.GetHosts() {
			visitContainer(hc.GetContainer(), fmt.Sprintf("roles/%d/hosts/%d", i, j), visit)
		}
		visitProxy(role.GetProxy(), fmt.Sprintf("roles/%d/proxy", i), visit)
	}
	for i, a := range req.GetAccessories() {
		for j, hc := range a.GetHosts() {
			visitContainer(hc.GetContainer(), fmt.Sprintf("accessories/%d/hosts/%d", i, j), visit)
		}
		visitProxy(a.GetProxy(), fmt.Sprintf("accessories/%d/proxy", i), visit)
		visitAuth(a.GetRegistry(), fmt.Sprintf("accessories/%d/registry", i), visit)
	}
	for i, ph := range req.GetProxyHosts() {
		visitContainer(ph.GetBoot().GetContainer(), fmt.Sprintf("proxy_hosts/%d", i), visit)
	}
	for i, ph := range req.GetLifecycle().GetPhases() {
		for j, s := range ph.GetSteps() {
			visitOperation(s.GetOp(), func(path string, f secretField) {
				visit(fmt.Sprintf("lifecycle/%d/%d/%s", i, j, path), f)
			})
		}
	}
}

// visitOperation visits every secret-bearing field of op (paths are those
// within op: only Redact's walk of a request needs them).
func visitOperation(op *agentv1.Operation, visit visitFunc) {
	switch o := op.GetOp().(type) {
	case *agentv1.Operation_PullImage:
		visitAuth(o.PullImage.GetAuth(), "auth", visit)
	case *agentv1.Operation_BootApp:
		visitContainer(o.BootApp.GetContainer(), "container", visit)
		visitProxy(o.BootApp.GetProxy(), "proxy", visit)
	case *agentv1.Operation_BootProxy:
		visitAuth(o.BootProxy.GetAuth(), "auth", visit)
		visitContainer(o.BootProxy.GetBoot().GetContainer(), "container", visit)
	case *agentv1.Operation_AppControl:
		visitProxy(o.AppControl.GetProxy(), "proxy", visit)
	case *agentv1.Operation_BootAccessory:
		visitAuth(o.BootAccessory.GetAuth(), "auth", visit)
		visitContainer(o.BootAccessory.GetContainer(), "container", visit)
		visitProxy(o.BootAccessory.GetProxy(), "proxy", visit)
	}
}

// redactField replaces a secret: strings by Redacted, file contents by
// nothing. An empty value stays empty.
func redactField(_ string, f secretField) {
	switch {
	case f.b != nil:
		*f.b = nil
	case *f.str != "":
		*f.str = Redacted
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
	return op
}

// Redact returns a copy of req without secret values: container secret env
// values, registry credentials and file contents (TLS keys, accessory files).
func Redact(req *deployv1.Request) *deployv1.Request {
	r := proto.Clone(req).(*deployv1.Request)
	visitRequest(r, redactField)
	return r
}

// sealPlan returns a copy of plan whose operations hold, instead of each
// secret value, a reference to the field of req (the deploy's Secrets
// record) that holds the same value.
func sealPlan(plan *deployv1.Plan, req *deployv1.Request) (*deployv1.Plan, error) {
	paths := map[string]string{} // value → first path holding it
	visitRequest(req, func(path string, f secretField) {
		if v := f.get(); v != "" {
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
				v := f.get()
				if v == "" {
					return
				}
				path, ok := paths[v]
				if !ok {
					// Operations are built from the request: a secret it
					// does not hold would be a scheduler bug. Fail the
					// submit rather than store the value.
					err = fmt.Errorf("deploy: step %s carries a secret the request does not hold", s.GetId())
					f.set(Redacted)
					return
				}
				f.set(refPrefix + path)
			})
		}
	}
	return out, err
}

// resolveOperation returns a copy of a sealed op with every reference
// replaced by the value req (the deploy's Secrets record) holds there.
func resolveOperation(op *agentv1.Operation, req *deployv1.Request) (*agentv1.Operation, error) {
	values := map[string]string{}
	visitRequest(req, func(path string, f secretField) { values[path] = f.get() })
	op = proto.Clone(op).(*agentv1.Operation)
	var err error
	visitOperation(op, func(_ string, f secretField) {
		v := f.get()
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
		f.set(val)
	})
	if err != nil {
		return nil, err
	}
	return op, nil
}
