package deploy

import (
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

// Redacted replaces a secret value wherever a record leaves the controller.
const Redacted = "[REDACTED]"

// RedactOperation returns a copy of op without secret values: secret env,
// registry credentials and file contents (TLS keys, accessory files).
func RedactOperation(op *agentv1.Operation) *agentv1.Operation {
	if op == nil {
		return nil
	}
	op = proto.Clone(op).(*agentv1.Operation)
	switch o := op.GetOp().(type) {
	case *agentv1.Operation_PullImage:
		redactAuth(o.PullImage.GetAuth())
	case *agentv1.Operation_BootApp:
		redactContainer(o.BootApp.GetContainer())
		redactProxy(o.BootApp.GetProxy())
	case *agentv1.Operation_BootProxy:
		redactAuth(o.BootProxy.GetAuth())
		redactContainer(o.BootProxy.GetBoot().GetContainer())
	case *agentv1.Operation_BootAccessory:
		redactAuth(o.BootAccessory.GetAuth())
		redactContainer(o.BootAccessory.GetContainer())
		redactProxy(o.BootAccessory.GetProxy())
	}
	return op
}

// Redact returns a copy of req without secret values: container secret env
// values, registry credentials and file contents (TLS keys, accessory files).
func Redact(req *deployv1.Request) *deployv1.Request {
	r := proto.Clone(req).(*deployv1.Request)
	redactAuth(r.GetRegistry())
	for _, role := range r.GetRoles() {
		for _, hc := range role.GetHosts() {
			redactContainer(hc.GetContainer())
		}
		redactProxy(role.GetProxy())
	}
	for _, a := range r.GetAccessories() {
		for _, hc := range a.GetHosts() {
			redactContainer(hc.GetContainer())
		}
		redactProxy(a.GetProxy())
		redactAuth(a.GetRegistry())
	}
	for _, ph := range r.GetProxyHosts() {
		redactContainer(ph.GetBoot().GetContainer())
	}
	return r
}

func redactContainer(c *specv1.Container) {
	for _, kv := range c.GetSecretEnv() {
		kv.Value = Redacted
	}
	for _, f := range c.GetFiles() {
		f.Content = nil
	}
}

func redactAuth(a *specv1.RegistryAuth) {
	if a == nil {
		return
	}
	if a.Password != "" {
		a.Password = Redacted
	}
	if a.Username != "" {
		a.Username = Redacted
	}
}

func redactProxy(p *specv1.ProxyDeploy) {
	for _, f := range p.GetFiles() {
		f.Content = nil
	}
}
