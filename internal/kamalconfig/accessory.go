package kamalconfig

import (
	"strings"

	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

// Accessory is one accessory.
type Accessory struct {
	Name        string
	ServiceName string
	Image       string
	Hosts       []string
	raw         *yaml11.Value
	env         *envSpec
	Registry    *Registry
	Proxy       *yaml11.Value
}

// newAccessory validates and builds accessory name
// (Kamal::Configuration::Accessory); roles must be loaded.
func (c *Config) newAccessory(name string, cfg *yaml11.Value) (*Accessory, error) {
	if cfg == nil {
		cfg = &yaml11.Value{Kind: yaml11.KindNull}
	}
	if err := c.validateAccessory(name, cfg); err != nil {
		return nil, err
	}
	a := &Accessory{Name: name, raw: cfg, env: newEnvSpec(cfg.Get("env"))}
	if err := a.setProxy(cfg.Get("proxy")); err != nil {
		return nil, err
	}
	if err := a.setRegistry(cfg.Get("registry")); err != nil {
		return nil, err
	}
	a.ServiceName = c.Service + "-" + name
	if s := cfg.Get("service"); s != nil && s.Kind == yaml11.KindString {
		a.ServiceName = s.Str
	}
	a.Image = cfg.Get("image").S()
	if a.Registry != nil && a.Registry.Server != "" {
		a.Image = a.Registry.Server + "/" + a.Image
	}
	a.Hosts = c.accessoryHosts(cfg)
	return a, nil
}

// validateAccessory checks the keys, that exactly one way of placing it is
// given, its labels, the roles it names and its env.
func (c *Config) validateAccessory(name string, cfg *yaml11.Value) error {
	vd := &validator{ctx: "accessories/" + name}
	if err := vd.againstExample(cfg, example("accessory")); err != nil {
		return err
	}
	n := 0
	for _, k := range []string{"host", "hosts", "role", "roles", "tag", "tags"} {
		if cfg.Has(k) {
			n++
		}
	}
	if n != 1 {
		return vd.errAt(cfg, "specify one of `host`, `hosts`, `role`, `roles`, `tag` or `tags`")
	}
	if err := vd.labels(cfg.Get("labels")); err != nil {
		return err
	}
	if err := vd.dockerOptions(cfg.Get("options")); err != nil {
		return err
	}
	if rs := cfg.Get("roles"); rs != nil && rs.Kind == yaml11.KindSeq {
		var missing []string
		for _, r := range rs.Strings() {
			if c.declaredRole(r) == nil {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			return vd.errAt(rs, "unknown roles "+strings.Join(missing, ", "))
		}
	} else if r := cfg.Get("role"); r != nil && !r.IsNull() && c.declaredRole(r.S()) == nil {
		return vd.errAt(r, "unknown role "+r.S())
	}
	return (&validator{ctx: "accessories/" + name + "/env"}).env(orEmpty(cfg.Get("env")))
}

// setProxy validates and keeps proxy: (any present value puts the
// accessory behind kamal-proxy).
func (a *Accessory) setProxy(p *yaml11.Value) error {
	if !p.Present() {
		return nil
	}
	if p.Kind != yaml11.KindMap {
		a.Proxy = yaml11.NewMap()
		return nil
	}
	if err := (&validator{ctx: "accessories/" + a.Name + "/proxy"}).proxy(p); err != nil {
		return err
	}
	a.Proxy = p
	return nil
}

// setRegistry validates and keeps the accessory's own registry, if any.
func (a *Accessory) setRegistry(reg *yaml11.Value) error {
	if !reg.Present() {
		return nil
	}
	if err := (&validator{ctx: "accessories/" + a.Name + "/registry"}).registry(reg); err != nil {
		return err
	}
	r := registryFrom(reg)
	a.Registry = &r
	return nil
}

// declaredRole returns the declared role name, or nil.
func (c *Config) declaredRole(name string) *Role { return findRole(c.declared, name) }

// accessoryHosts resolves host, hosts, role, roles, tag or tags to hosts.
func (c *Config) accessoryHosts(cfg *yaml11.Value) []string {
	hosts := []string{}
	switch {
	case cfg.Has("host"):
		hosts = []string{cfg.Get("host").S()}
	case cfg.Has("hosts"):
		hosts = cfg.Get("hosts").Strings()
	case cfg.Has("role"), cfg.Has("roles"):
		names := cfg.Get("roles").Strings()
		if cfg.Has("role") {
			names = []string{cfg.Get("role").S()}
		}
		for _, rn := range names {
			if r := c.declaredRole(rn); r != nil {
				hosts = append(hosts, r.Hosts...)
			}
		}
	case cfg.Has("tag"), cfg.Has("tags"):
		tags := cfg.Get("tags").Strings()
		if cfg.Has("tag") {
			tags = []string{cfg.Get("tag").S()}
		}
		for _, tag := range tags {
			hosts = append(hosts, c.taggedHosts(tag)...)
		}
	}
	if hosts == nil {
		return []string{}
	}
	return hosts
}

// taggedHosts are the hosts, over every role in file order, whose tags
// include tag (a tag string matches by substring, as Kamal's include?).
func (c *Config) taggedHosts(tag string) []string {
	servers := c.Raw.Get("servers")
	if servers == nil || servers.Kind != yaml11.KindMap {
		return nil
	}
	var out []string
	for _, rn := range servers.Keys {
		list := servers.Map[rn]
		if list != nil && list.Kind == yaml11.KindMap {
			list = list.Get("hosts")
		}
		if list == nil || list.Kind != yaml11.KindSeq {
			continue
		}
		for _, h := range list.Seq {
			if h.Kind == yaml11.KindMap && len(h.Keys) > 0 && hasTag(h.Map[h.Keys[0]], tag) {
				out = append(out, h.Keys[0])
			}
		}
	}
	return out
}

func hasTag(tv *yaml11.Value, tag string) bool {
	switch {
	case tv == nil:
		return false
	case tv.Kind == yaml11.KindSeq:
		return contains(tv.Strings(), tag)
	}
	return strings.Contains(tv.S(), tag)
}
