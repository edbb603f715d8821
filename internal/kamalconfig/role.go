package kamalconfig

import (
	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

// Role is one server role.
type Role struct {
	Name         string
	Hosts        []string
	HostTags     map[string][]string
	Cmd          *yaml11.Value
	Options      *yaml11.Value
	RunningProxy bool
	// Proxy is the role's effective proxy config (root deep-merged with the role's).
	Proxy       *yaml11.Value
	Logging     *yaml11.Value
	Labels      *yaml11.Value // custom labels (root, then role)
	AssetPath   string
	StopTimeout *int64
	Primary     bool
	env         *envSpec
	raw         *yaml11.Value
}

// newRole validates and builds role name (Kamal::Configuration::Role).
func (c *Config) newRole(name string) (*Role, error) {
	roleCfg := c.roleConfig(name)
	spec, err := validateRole(name, roleCfg)
	if err != nil {
		return nil, err
	}
	r := &Role{Name: name, raw: roleCfg, Primary: name == c.PrimaryRoleName, HostTags: map[string][]string{}}
	if err := c.setRoleProxy(r, spec); err != nil {
		return nil, err
	}
	r.addHosts(c.roleHostList(roleCfg, spec))
	c.setRoleSettings(r, spec)
	return r, nil
}

// roleConfig is servers/<name>: an empty hash when servers is a plain host
// list, positioned at its key when null or absent.
func (c *Config) roleConfig(name string) *yaml11.Value {
	servers := c.Raw.Get("servers")
	if servers.Kind == yaml11.KindSeq {
		m := yaml11.NewMap()
		m.Pos = servers.Pos
		return m
	}
	roleCfg := servers.Map[name]
	if roleCfg == nil {
		return &yaml11.Value{Kind: yaml11.KindNull, Pos: keyPos(servers, name)}
	}
	if roleCfg.Kind == yaml11.KindNull {
		roleCfg.Pos = keyPos(servers, name)
	}
	return roleCfg
}

// validateRole checks a role's configuration and returns its settings hash
// (empty for a role given as a host list).
func validateRole(name string, roleCfg *yaml11.Value) (*yaml11.Value, error) {
	vd := &validator{ctx: "servers/" + name}
	if err := vd.validateType(roleCfg, tArray, tHash); err != nil {
		return nil, err
	}
	spec := yaml11.NewMap()
	if roleCfg.Kind == yaml11.KindSeq {
		if err := vd.servers(roleCfg); err != nil {
			return nil, err
		}
	} else {
		if err := vd.againstExample(roleCfg, example("role")); err != nil {
			return nil, err
		}
		if err := vd.labels(roleCfg.Get("labels")); err != nil {
			return nil, err
		}
		if err := vd.dockerOptions(roleCfg.Get("options")); err != nil {
			return nil, err
		}
		spec = roleCfg
	}
	if err := (&validator{ctx: "servers/" + name + "/env"}).env(orEmpty(spec.Get("env"))); err != nil {
		return nil, err
	}
	if err := (&validator{ctx: "servers/" + name + "/logging"}).againstExample(orEmpty(spec.Get("logging")), example("logging")); err != nil {
		return nil, err
	}
	return spec, nil
}

// setRoleProxy decides whether the role runs behind kamal-proxy (the
// primary role does unless proxy: false; others only with proxy:) and
// merges its proxy settings over the root's.
func (c *Config) setRoleProxy(r *Role, spec *yaml11.Value) error {
	ps := spec.Get("proxy")
	if r.Primary {
		r.RunningProxy = !ps.IsFalse()
	} else {
		r.RunningProxy = ps.Truthy()
	}
	if !r.RunningProxy {
		return nil
	}
	pc := yaml11.NewMap()
	if ps != nil && ps.Kind == yaml11.KindMap {
		pc = ps
	}
	if err := (&validator{ctx: "servers/" + r.Name + "/proxy"}).proxy(pc); err != nil {
		return err
	}
	r.Proxy = yaml11.DeepMerge(mapOrEmpty(c.Raw.Get("proxy")), pc)
	return nil
}

// roleHostList is where the role's hosts are listed.
func (c *Config) roleHostList(roleCfg, spec *yaml11.Value) *yaml11.Value {
	switch servers := c.Raw.Get("servers"); {
	case servers.Kind == yaml11.KindSeq:
		return servers
	case roleCfg.Kind == yaml11.KindSeq:
		return roleCfg
	}
	return spec.Get("hosts")
}

// addHosts adds the hosts of a host list (`host` or `{host: tags}`) in
// order, a repeated host keeping its first place and its last tags.
func (r *Role) addHosts(list *yaml11.Value) {
	if list == nil || list.Kind != yaml11.KindSeq {
		return
	}
	for _, h := range list.Seq {
		var host string
		var tags []string
		switch h.Kind {
		case yaml11.KindMap:
			if len(h.Keys) == 0 {
				continue
			}
			host = h.Keys[0]
			tags = h.Map[host].Strings()
		case yaml11.KindString:
			host = h.Str
		default:
			continue
		}
		if _, seen := r.HostTags[host]; !seen {
			r.Hosts = append(r.Hosts, host)
		}
		r.HostTags[host] = tags
	}
}

// setRoleSettings reads cmd, options, env, logging, labels, asset_path and
// stop_timeout, role values over root ones.
func (c *Config) setRoleSettings(r *Role, spec *yaml11.Value) {
	r.Cmd = spec.Get("cmd")
	r.Options = spec.Get("options")
	r.env = newEnvSpec(spec.Get("env"))
	r.Logging = yaml11.DeepMerge(mapOrEmpty(c.Raw.Get("logging")), mapOrEmpty(spec.Get("logging")))
	labels := yaml11.NewMap()
	for _, src := range []*yaml11.Value{c.Raw.Get("labels"), spec.Get("labels")} {
		if src.Present() && src.Kind == yaml11.KindMap {
			for _, k := range src.Keys {
				labels.Set(k, src.Map[k], src.KeyPos[k])
			}
		}
	}
	r.Labels = labels
	r.AssetPath = spec.Get("asset_path").S()
	if r.AssetPath == "" {
		r.AssetPath = c.Raw.Get("asset_path").S()
	}
	for _, st := range []*yaml11.Value{spec.Get("stop_timeout"), c.Raw.Get("stop_timeout")} {
		if st != nil && st.Kind == yaml11.KindInt {
			n := st.Int
			r.StopTimeout = &n
			return
		}
	}
}

// mapOrEmpty is v when it is a hash, else a new empty hash.
func mapOrEmpty(v *yaml11.Value) *yaml11.Value {
	if v == nil || v.Kind != yaml11.KindMap {
		return yaml11.NewMap()
	}
	return v
}
