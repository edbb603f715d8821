package kamalconfig

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"

	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

var serviceName = regexp.MustCompile(`(?i)^[a-z0-9_-]+$`)

// New validates raw the way Kamal's Configuration#initialize does, in the
// same order (so the first refusal is Kamal's), and builds the model.
func New(raw *yaml11.Value, opts Options) (*Config, error) {
	c := &Config{Raw: raw, opts: opts, Destination: opts.Destination, Version: opts.version()}
	steps := []func() error{
		c.loadRoot,
		c.loadRoles,
		c.loadRegistry,
		c.loadAccessories,
		c.loadAliases,
		c.loadBoot,
		c.loadBuilder,
		c.validateSections,
		c.checkRequired,
		c.checkServers,
		c.checkLimits,
		c.checkHooks,
		c.checkSSL,
		c.orderRoles,
		c.checkLocalRegistry,
		c.checkProxyRuns,
		c.checkHooksOutput,
		c.loadSettings,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// version is --version, else VERSION from Env (or the process environment).
func (o *Options) version() string {
	switch {
	case o.Version != "":
		return o.Version
	case o.Env != nil:
		return o.Env["VERSION"]
	}
	return os.Getenv("VERSION")
}

// loadRoot checks the root keys and reads service and primary_role.
func (c *Config) loadRoot() error {
	if err := (&validator{allowExt: true}).againstExample(c.Raw, example("root")); err != nil {
		return err
	}
	c.PrimaryRoleName = "web"
	if p := c.Raw.Get("primary_role"); p.Present() {
		c.PrimaryRoleName = p.S()
	}
	c.Service = c.Raw.Get("service").S()
	return nil
}

// loadRoles validates servers and builds the declared roles, in name order.
func (c *Config) loadRoles() error {
	servers := c.Raw.Get("servers")
	if servers != nil {
		sv := &validator{ctx: "servers"}
		if err := sv.validateType(servers, tArray, tHash, tNil); err != nil {
			return err
		}
		if servers.Kind == yaml11.KindSeq {
			if err := sv.servers(servers); err != nil {
				return err
			}
		}
	}
	c.envRoot = newEnvSpec(c.Raw.Get("env"))
	c.envTags = map[string]*envSpec{}
	if tags := c.Raw.Get("env").Get("tags"); tags != nil && tags.Kind == yaml11.KindMap {
		for _, t := range tags.Keys {
			c.envTags[t] = newEnvSpec(tags.Map[t])
		}
	}
	var names []string
	if servers != nil && servers.Kind == yaml11.KindSeq {
		names = []string{"web"}
	} else if servers != nil && servers.Kind == yaml11.KindMap {
		names = slices.Clone(servers.Keys)
		sort.Strings(names)
	}
	for _, name := range names {
		r, err := c.newRole(name)
		if err != nil {
			return err
		}
		c.declared = append(c.declared, r)
	}
	return nil
}

func (c *Config) loadRegistry() error {
	reg := orEmptyAt(c.Raw.Get("registry"), c.Raw.Pos)
	if err := (&validator{ctx: "registry"}).registry(reg); err != nil {
		return err
	}
	c.Registry = registryFrom(reg)
	return nil
}

func (c *Config) loadAccessories() error {
	accs := c.Raw.Get("accessories")
	if accs == nil || accs.Kind != yaml11.KindMap {
		return nil
	}
	for _, name := range accs.Keys {
		a, err := c.newAccessory(name, accs.Map[name])
		if err != nil {
			return err
		}
		c.Accessories = append(c.Accessories, a)
	}
	return nil
}

func (c *Config) loadAliases() error {
	c.Aliases = map[string]string{}
	al := c.Raw.Get("aliases")
	if al == nil || al.Kind != yaml11.KindMap {
		return nil
	}
	for _, name := range al.Keys {
		vd := &validator{ctx: "aliases/" + name}
		v := al.Map[name]
		if err := vd.validateType(v, tString); err != nil {
			return err
		}
		if !aliasName.MatchString(name) {
			return vd.errAt(v, fmt.Sprintf("Invalid alias name: '%s'. Must only contain lowercase letters, alphanumeric, hyphens and underscores.", name))
		}
		if reservedAliases[name] {
			return vd.errAt(v, fmt.Sprintf("Alias '%s' conflicts with a built-in command.", name))
		}
		c.Aliases[name] = v.S()
	}
	return nil
}

func (c *Config) loadBoot() error {
	boot := orEmptyAt(c.Raw.Get("boot"), c.Raw.Pos)
	if err := (&validator{ctx: "boot"}).againstExample(boot, example("boot")); err != nil {
		return err
	}
	c.Boot = Boot{Limit: boot.Get("limit").S(), Wait: int(boot.Get("wait").IntOr(0)), ParallelRoles: boot.Get("parallel_roles").Truthy()}
	return nil
}

// loadBuilder validates the builder section and, without --version or
// VERSION, takes the version from git.
func (c *Config) loadBuilder() error {
	builder := orEmptyAt(c.Raw.Get("builder"), c.Raw.Pos)
	bv := &validator{ctx: "builder"}
	if err := bv.againstExample(builder, example("builder")); err != nil {
		return err
	}
	if t := builder.Get("cache").Get("type"); t != nil && !t.IsNull() && t.S() != "gha" && t.S() != "registry" {
		return bv.errAt(t, "Invalid cache type: "+t.S())
	}
	if builder.Get("arch").Blank() {
		return bv.errAt(builder, "Builder arch not set")
	}
	if builder.Has("pack") && builder.Get("arch").Kind == yaml11.KindSeq && len(builder.Get("arch").Seq) > 1 {
		return bv.errAt(builder.Get("arch"), "buildpacks only support building for one arch")
	}
	if builder.Get("local").IsFalse() && builder.Get("remote").Blank() {
		return bv.errAt(builder.Get("local"), "Cannot disable local builds, no remote is set")
	}
	c.Builder = builderFrom(builder)
	if c.Version != "" {
		return nil
	}
	v, err := gitVersion(c.opts.Dir, builder.Get("context").IsNull())
	c.Version = v
	return err
}

// validateSections checks env, logging, proxy, ssh, sshkit and output, in
// Kamal's order.
func (c *Config) validateSections() error {
	for _, s := range []string{"env", "logging", "proxy", "ssh", "sshkit", "output"} {
		if err := c.validateSection(s); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateSection(name string) error {
	v := c.Raw.Get(name)
	vd := &validator{ctx: name}
	switch name {
	case "env":
		return vd.env(orEmpty(v))
	case "proxy":
		// A root proxy: true/false is no hash: only a role's proxy may be
		// a boolean (Kamal builds the root proxy from it and refuses it).
		if v != nil && v.Kind == yaml11.KindBool {
			return vd.typeErr(v, tHash)
		}
		return vd.proxy(v)
	case "output":
		if !c.Raw.Has("output") {
			return nil
		}
	}
	return vd.againstExample(orEmpty(v), example(name))
}
