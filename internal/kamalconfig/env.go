package kamalconfig

import "github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"

// envSpec is an env section: clear values in order and secret names.
type envSpec struct {
	clearKeys []string
	clear     map[string]*yaml11.Value
	secrets   []string
}

func newEnvSpec(cfg *yaml11.Value) *envSpec {
	e := &envSpec{clear: map[string]*yaml11.Value{}}
	if cfg == nil || cfg.Kind != yaml11.KindMap {
		return e
	}
	var clear *yaml11.Value
	switch {
	case cfg.Has("clear"):
		clear = cfg.Map["clear"]
	case cfg.Has("secret") || cfg.Has("tags"):
	default:
		clear = cfg
	}
	if clear != nil && clear.Kind == yaml11.KindMap {
		for _, k := range clear.Keys {
			e.clearKeys = append(e.clearKeys, k)
			e.clear[k] = clear.Map[k]
		}
	}
	if s := cfg.Get("secret"); s != nil && s.Kind == yaml11.KindSeq {
		e.secrets = s.Strings()
	}
	return e
}

func (e *envSpec) merge(o *envSpec) *envSpec {
	out := &envSpec{clear: map[string]*yaml11.Value{}}
	for _, src := range []*envSpec{e, o} {
		for _, k := range src.clearKeys {
			if _, ok := out.clear[k]; !ok {
				out.clearKeys = append(out.clearKeys, k)
			}
			out.clear[k] = src.clear[k]
		}
	}
	seen := map[string]bool{}
	for _, s := range append(append([]string{}, e.secrets...), o.secrets...) {
		if !seen[s] {
			seen[s] = true
			out.secrets = append(out.secrets, s)
		}
	}
	return out
}

// SecretKeys returns the role's env.secret entries for host, in order.
func (r *Role) SecretKeys() []string {
	return r.env.secrets
}

// RoleEnv is the effective env for a role on a host.
func (c *Config) roleEnv(r *Role, host string) *envSpec {
	e := c.envRoot.merge(r.env)
	for _, t := range r.HostTags[host] {
		if te, ok := c.envTags[t]; ok {
			e = e.merge(te)
		}
	}
	return e
}

// EnvSecretKeys is what Kamal's env(host).secret_keys gives for the role's first host.
func (c *Config) EnvSecretKeys(r *Role) []string {
	host := ""
	if len(r.Hosts) > 0 {
		host = r.Hosts[0]
	}
	s := c.roleEnv(r, host).secrets
	if s == nil {
		return []string{}
	}
	return s
}
