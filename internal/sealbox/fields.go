package sealbox

import (
	"fmt"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

// Secret-bearing fields are container secret env values and file contents
// (TLS keys, accessory files), registry credentials and proxy file
// contents. This file is their one list.

// Field is one secret-bearing field: a string or a bytes field.
type Field struct {
	str *string
	b   *[]byte
}

// Get returns the field's value.
func (f Field) Get() string {
	if f.str != nil {
		return *f.str
	}
	return string(*f.b)
}

// Set sets the field's value.
func (f Field) Set(v string) {
	if f.str != nil {
		*f.str = v
		return
	}
	*f.b = []byte(v)
}

// IsBytes reports whether the field is a bytes field (file contents).
func (f Field) IsBytes() bool { return f.b != nil }

// VisitFunc is called with every secret-bearing field and its path.
type VisitFunc func(path string, f Field)

// HostVisitFunc is VisitFunc with the hosts that need the field.
type HostVisitFunc func(path string, hosts []string, f Field)

func visitContainer(c *specv1.Container, path string, hosts []string, visit HostVisitFunc) {
	if c == nil {
		return
	}
	for i, kv := range c.GetSecretEnv() {
		visit(fmt.Sprintf("%s/secret_env/%d", path, i), hosts, Field{str: &kv.Value})
	}
	for i, f := range c.GetFiles() {
		visit(fmt.Sprintf("%s/files/%d", path, i), hosts, Field{b: &f.Content})
	}
}

func visitAuth(a *specv1.RegistryAuth, path string, hosts []string, visit HostVisitFunc) {
	if a == nil {
		return
	}
	visit(path+"/username", hosts, Field{str: &a.Username})
	visit(path+"/password", hosts, Field{str: &a.Password})
}

func visitProxy(p *specv1.ProxyDeploy, path string, hosts []string, visit HostVisitFunc) {
	for i, f := range p.GetFiles() {
		visit(fmt.Sprintf("%s/files/%d", path, i), hosts, Field{b: &f.Content})
	}
}

func hostsOf(hcs []*deployv1.HostContainer) []string {
	var out []string
	for _, hc := range hcs {
		out = append(out, hc.GetHost())
	}
	return out
}

// RequestHosts lists every host req names, in order of first mention.
func RequestHosts(req *deployv1.Request) []string {
	seen := map[string]bool{}
	var out []string
	add := func(hs ...string) {
		for _, h := range hs {
			if h != "" && !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	for _, role := range req.GetRoles() {
		add(hostsOf(role.GetHosts())...)
	}
	for _, a := range req.GetAccessories() {
		add(hostsOf(a.GetHosts())...)
	}
	for _, ph := range req.GetProxyHosts() {
		add(ph.GetHost())
	}
	for _, ph := range req.GetLifecycle().GetPhases() {
		for _, s := range ph.GetSteps() {
			add(s.GetHost())
		}
	}
	return out
}

// VisitRequestHosts visits every secret-bearing field of req with the
// hosts whose operations may carry it: a host's container goes to that
// host, a role's proxy files to the role's hosts, registry credentials to
// every host. Paths index into the request's lists, so a path names one
// field of one request whatever binary reads it.
func VisitRequestHosts(req *deployv1.Request, visit HostVisitFunc) {
	all := RequestHosts(req)
	visitAuth(req.GetRegistry(), "registry", all, visit)
	for i, role := range req.GetRoles() {
		for j, hc := range role.GetHosts() {
			visitContainer(hc.GetContainer(), fmt.Sprintf("roles/%d/hosts/%d", i, j), []string{hc.GetHost()}, visit)
		}
		visitProxy(role.GetProxy(), fmt.Sprintf("roles/%d/proxy", i), hostsOf(role.GetHosts()), visit)
	}
	for i, a := range req.GetAccessories() {
		for j, hc := range a.GetHosts() {
			visitContainer(hc.GetContainer(), fmt.Sprintf("accessories/%d/hosts/%d", i, j), []string{hc.GetHost()}, visit)
		}
		visitProxy(a.GetProxy(), fmt.Sprintf("accessories/%d/proxy", i), hostsOf(a.GetHosts()), visit)
		visitAuth(a.GetRegistry(), fmt.Sprintf("accessories/%d/registry", i), hostsOf(a.GetHosts()), visit)
	}
	for i, ph := range req.GetProxyHosts() {
		visitContainer(ph.GetBoot().GetContainer(), fmt.Sprintf("proxy_hosts/%d", i), []string{ph.GetHost()}, visit)
	}
	for i, ph := range req.GetLifecycle().GetPhases() {
		for j, s := range ph.GetSteps() {
			hosts := []string{s.GetHost()}
			VisitOperation(s.GetOp(), func(path string, f Field) {
				visit(fmt.Sprintf("lifecycle/%d/%d/%s", i, j, path), hosts, f)
			})
		}
	}
}

// VisitRequest visits every secret-bearing field of req.
func VisitRequest(req *deployv1.Request, visit VisitFunc) {
	VisitRequestHosts(req, func(path string, _ []string, f Field) { visit(path, f) })
}

// VisitOperation visits every secret-bearing field of op (paths are those
// within op).
func VisitOperation(op *agentv1.Operation, visit VisitFunc) {
	v := func(path string, _ []string, f Field) { visit(path, f) }
	switch o := op.GetOp().(type) {
	case *agentv1.Operation_PullImage:
		visitAuth(o.PullImage.GetAuth(), "auth", nil, v)
	case *agentv1.Operation_BootApp:
		visitContainer(o.BootApp.GetContainer(), "container", nil, v)
		visitProxy(o.BootApp.GetProxy(), "proxy", nil, v)
	case *agentv1.Operation_BootProxy:
		visitAuth(o.BootProxy.GetAuth(), "auth", nil, v)
		visitContainer(o.BootProxy.GetBoot().GetContainer(), "container", nil, v)
	case *agentv1.Operation_AppControl:
		visitProxy(o.AppControl.GetProxy(), "proxy", nil, v)
	case *agentv1.Operation_BootAccessory:
		visitAuth(o.BootAccessory.GetAuth(), "auth", nil, v)
		visitContainer(o.BootAccessory.GetContainer(), "container", nil, v)
		visitProxy(o.BootAccessory.GetProxy(), "proxy", nil, v)
	}
}
