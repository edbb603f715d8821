package kamalconfig

import (
	"fmt"
	"path"
	"strings"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
	"github.com/kctl-dev/kctl/internal/spec"
)

// Hostname is Kamal's container hostname for host: the host truncated to 51
// characters, a dash and 12 hex characters.
func (c *Config) Hostname(host string) string {
	suffix := ""
	if c.opts.HostnameSuffix != nil {
		suffix = c.opts.HostnameSuffix()
	} else {
		suffix = randomHex12()
	}
	h := host
	if len(h) > 51 {
		h = h[:51]
	}
	return h + "-" + suffix
}

// argPairs turns a hash into argumentize pairs: present values are quoted,
// false is written bare as key=false, nil and blank values leave the key alone.
func argPairs(keys []string, m map[string]*yaml11.Value) []*specv1.KeyValue {
	var out []*specv1.KeyValue
	for _, k := range keys {
		v := m[k]
		switch {
		case v.Present():
			out = append(out, &specv1.KeyValue{Key: k, Value: v.S()})
		case v.IsFalse():
			out = append(out, &specv1.KeyValue{Key: k, Value: "false", Raw: true})
		default:
			out = append(out, &specv1.KeyValue{Key: k, Bare: true})
		}
	}
	return out
}

// optionPairs is optionize: arrays fan out, true is a bare flag, nil is "".
// restartAndOptions splits a role's or an accessory's options into the
// restart policy (Kamal 2.12's restart_policy: options.restart, validated
// by dockerOptions, else unless-stopped) and the other docker-run options.
func restartAndOptions(opts *yaml11.Value) (string, []*specv1.Option) {
	restart := "unless-stopped"
	if rp := opts.Get("restart"); rp != nil && !rp.IsNull() && !rp.IsFalse() {
		restart = rp.S()
		opts = opts.Clone()
		opts.Delete("restart")
	}
	return restart, optionPairs(opts)
}

func optionPairs(opts *yaml11.Value) []*specv1.Option {
	if opts == nil || opts.Kind != yaml11.KindMap {
		return nil
	}
	var out []*specv1.Option
	add := func(k string, v *yaml11.Value) {
		if v.IsTrue() {
			out = append(out, &specv1.Option{Name: k, Bare: true})
			return
		}
		out = append(out, &specv1.Option{Name: k, Value: v.S()})
	}
	for _, k := range opts.Keys {
		v := opts.Map[k]
		if v != nil && v.Kind == yaml11.KindSeq {
			for _, e := range v.Seq {
				add(k, e)
			}
			continue
		}
		add(k, v)
	}
	return out
}

func loggingSpec(l *yaml11.Value) *specv1.Logging {
	if !l.Present() {
		return &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m"}}}
	}
	out := &specv1.Logging{}
	if d := l.Get("driver"); d != nil && !d.IsNull() {
		out.Driver = d.S()
	}
	if o := l.Get("options"); o != nil && o.Kind == yaml11.KindMap {
		out.Options = argPairs(o.Keys, o.Map)
	}
	return out
}

// resolveSecrets resolves what it can of env.secret entries, leaving out
// missing secrets (nil without a resolver).
func (c *Config) resolveSecrets(keys []string) []*specv1.KeyValue {
	if c.opts.Secrets == nil {
		return nil
	}
	out, _ := c.secretPairs(keys, false)
	return out
}

// secretPairs resolves env.secret entries ("NAME", or "NAME:SECRET" to
// read SECRET) to NAME=value pairs. strict fails on the first missing
// secret; otherwise missing ones are left out. It needs a resolver.
func (c *Config) secretPairs(keys []string, strict bool) ([]*specv1.KeyValue, error) {
	var out []*specv1.KeyValue
	for _, k := range keys {
		name, secret, ok := strings.Cut(k, ":")
		if !ok {
			secret = name
		}
		v, err := c.opts.Secrets.Secret(secret)
		if err != nil && strict {
			return nil, err
		}
		if err == nil {
			out = append(out, &specv1.KeyValue{Key: name, Value: v})
		}
	}
	return out, nil
}

// SecretEnv resolves the role's secret env for host, failing on a missing
// secret (the error names the secret, never a value).
func (c *Config) SecretEnv(role, host string) ([]*specv1.KeyValue, error) {
	r := c.Role(role)
	if r == nil {
		return nil, fmt.Errorf("%w: unknown role %s", ErrConfig, role)
	}
	if c.opts.Secrets == nil {
		return nil, fmt.Errorf("%w: no secrets resolver", ErrConfig)
	}
	return c.secretPairs(c.roleEnv(r, host).secrets, true)
}

// AppContainer is the container Kamal runs for role on host at the
// configured version.
func (c *Config) AppContainer(role, host string) *specv1.Container {
	r := c.Role(role)
	if r == nil {
		return nil
	}
	name := c.ContainerName(r.Name, "")
	env := []*specv1.KeyValue{
		{Key: "KAMAL_CONTAINER_NAME", Value: name},
		{Key: "KAMAL_VERSION", Value: c.Version},
		{Key: "KAMAL_HOST", Value: host},
	}
	if c.Destination != "" {
		env = append(env, &specv1.KeyValue{Key: "KAMAL_DESTINATION", Value: c.Destination})
	}
	e := c.roleEnv(r, host)
	env = append(env, argPairs(e.clearKeys, e.clear)...)
	var volumes []string
	if v := c.Raw.Get("volumes"); v != nil && v.Kind == yaml11.KindSeq {
		volumes = append(volumes, v.Strings()...)
	}
	if r.AssetPath != "" && r.RunningProxy {
		volumes = append(volumes, "$PWD/"+path.Join(c.AppDirectory(), "assets", "volumes", r.Name+"-"+c.Version)+":"+r.AssetPath)
	}
	labels := []*specv1.KeyValue{{Key: "service", Value: c.Service}, {Key: "role", Value: r.Name}}
	if c.Destination != "" {
		labels = append(labels, &specv1.KeyValue{Key: "destination", Value: c.Destination})
	} else {
		labels = append(labels, &specv1.KeyValue{Key: "destination", Bare: true})
	}
	// Custom labels can override the defaults (Hash#merge keeps the position).
	custom := argPairs(r.Labels.Keys, r.Labels.Map)
	for _, kv := range custom {
		replaced := false
		for i, l := range labels {
			if l.Key == kv.Key {
				labels[i] = kv
				replaced = true
			}
		}
		if !replaced {
			labels = append(labels, kv)
		}
	}
	restart, options := restartAndOptions(r.Options)
	assetPath := ""
	if r.AssetPath != "" && r.RunningProxy {
		assetPath = strings.SplitN(r.AssetPath, ":", 2)[0]
	}
	ct := &specv1.Container{
		AssetPath:   assetPath,
		Kind:        specv1.ContainerKind_CONTAINER_KIND_APP,
		Name:        name,
		Image:       c.Image(),
		Restart:     restart,
		Network:     "kamal",
		Hostname:    c.Hostname(host),
		Env:         env,
		EnvFile:     path.Join(c.EnvDirectory(), "roles", r.Name+".env"),
		SecretEnv:   c.resolveSecrets(e.secrets),
		SecretKeys:  e.secrets,
		Logging:     loggingSpec(r.Logging),
		Volumes:     volumes,
		Labels:      labels,
		Options:     options,
		Service:     c.Service,
		Role:        r.Name,
		Destination: c.Destination,
		Version:     c.Version,
		Host:        host,
	}
	if r.Cmd != nil && !r.Cmd.IsNull() {
		ct.Cmd = r.Cmd.S()
	}
	if p := c.StopPolicy(role); p.GetHasTimeout() {
		ct.StopTimeout, ct.HasStopTimeout = p.GetTimeout(), true
	}
	return ct
}

// StopPolicy is how Kamal stops an old container of role: `-t stop_timeout`
// when set, else drain_timeout for roles without the proxy and Docker's
// default for proxy roles (kamal-proxy has already drained them).
func (c *Config) StopPolicy(role string) *specv1.StopPolicy {
	r := c.Role(role)
	if r == nil {
		return nil
	}
	if r.StopTimeout != nil {
		return &specv1.StopPolicy{Timeout: uint32(*r.StopTimeout), HasTimeout: true}
	}
	if r.RunningProxy {
		return &specv1.StopPolicy{}
	}
	return &specv1.StopPolicy{Timeout: uint32(c.DrainTimeout), HasTimeout: true}
}

// Readiness is how Kamal waits for a role without the proxy.
func (c *Config) Readiness(role string) *specv1.Readiness {
	return &specv1.Readiness{DeployTimeout: uint32(c.DeployTimeout), ReadinessDelay: uint32(c.ReadinessDelay)}
}

// RegistryAuth resolves the registry credentials (nil registry: Docker Hub).
func (c *Config) RegistryAuth() (*specv1.RegistryAuth, error) {
	return c.registryAuth(c.Registry)
}

func (c *Config) registryAuth(r Registry) (*specv1.RegistryAuth, error) {
	out := &specv1.RegistryAuth{Server: r.Server, Username: r.Username, Password: r.Password}
	for _, p := range []struct {
		name string
		dst  *string
	}{{r.UsernameSecret, &out.Username}, {r.PasswordSecret, &out.Password}} {
		if p.name == "" {
			continue
		}
		if c.opts.Secrets == nil {
			return nil, fmt.Errorf("%w: secret %s needed for the registry but no secrets are loaded", ErrConfig, p.name)
		}
		v, err := c.opts.Secrets.Secret(p.name)
		if err != nil {
			return nil, err
		}
		*p.dst = v
	}
	return out, nil
}

// WithVersion returns a copy of the configuration for another version
// (rollback, stopping an old container).
func (c *Config) WithVersion(version string) *Config {
	cp := *c
	cp.Version = version
	return &cp
}

// EnvFile is the role's env file for host as Kamal writes it
// (.kamal/apps/<svc>/env/roles/<role>.env): the resolved secrets. It fails,
// naming the secret, when one is missing.
func (c *Config) EnvFile(role, host string) (string, error) {
	kvs, err := c.SecretEnv(role, host)
	if err != nil {
		return "", err
	}
	return spec.EnvFile(kvs), nil
}
