package kamalconfig

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

// Config is a validated Kamal project: Kamal's Kamal::Configuration.
type Config struct {
	Raw         *yaml11.Value
	opts        Options
	Service     string
	Destination string
	Version     string
	// Roles are ordered primary first, then by name (as Kamal's commander).
	Roles []*Role
	// Accessories are in file order.
	Accessories []*Accessory
	Registry    Registry
	// PrimaryRoleName is primary_role or "web".
	PrimaryRoleName string
	// Boot is boot.limit / boot.wait / boot.parallel_roles.
	Boot Boot
	// RetainContainers is retain_containers (default 5).
	RetainContainers int
	// Timeouts in seconds.
	ReadinessDelay, DeployTimeout, DrainTimeout int
	// HooksPath is hooks_path (default .kamal/hooks).
	HooksPath string
	// SecretsPath is secrets_path (default .kamal/secrets).
	SecretsPath string
	// AssetPath, ErrorPagesPath as configured.
	AssetPath, ErrorPagesPath string
	// Aliases maps alias names to their command lines.
	Aliases map[string]string
	// Builder is the builder section.
	Builder Builder

	envRoot *envSpec
	envTags map[string]*envSpec
}

// Boot is the rolling-boot configuration.
type Boot struct {
	Limit         string // "" (all), "3" or "25%"
	Wait          int
	ParallelRoles bool
}

// Builder is the builder section (Kamal defaults applied).
type Builder struct {
	Arch                                []string
	Remote                              string
	Local                               bool
	Context                             string // "" means Kamal's git clone of HEAD
	Dockerfile                          string
	Target                              string
	Args                                [][2]string // build args in file order
	Secrets                             []string
	SSH                                 string
	Driver                              string
	Provenance                          string
	SBOM                                string
	CacheType, CacheOptions, CacheImage string
	PackBuilder                         string
	Buildpacks                          []string
	Raw                                 *yaml11.Value
}

func builderFrom(b *yaml11.Value) Builder {
	out := Builder{
		Arch: b.Get("arch").Strings(), Remote: b.Get("remote").S(), Local: !b.Get("local").IsFalse(),
		Context: b.Get("context").S(), Dockerfile: "Dockerfile", Target: b.Get("target").S(),
		Secrets: b.Get("secrets").Strings(), SSH: b.Get("ssh").S(), Driver: "docker-container",
		Provenance: b.Get("provenance").S(), SBOM: b.Get("sbom").S(),
		CacheType: b.Get("cache").Get("type").S(), CacheOptions: b.Get("cache").Get("options").S(), CacheImage: b.Get("cache").Get("image").S(),
		PackBuilder: b.Get("pack").Get("builder").S(), Buildpacks: b.Get("pack").Get("buildpacks").Strings(), Raw: b,
	}
	if d := b.Get("dockerfile"); d.Present() {
		out.Dockerfile = d.S()
	}
	if d := b.Get("driver"); d.Present() {
		out.Driver = d.S()
	}
	if args := b.Get("args"); args != nil && args.Kind == yaml11.KindMap {
		for _, k := range args.Keys {
			out.Args = append(out.Args, [2]string{k, args.Map[k].S()})
		}
	}
	return out
}

// Registry is the image registry and its credentials (secret names or literals).
type Registry struct {
	Server string
	// Username/Password are literals, or the secret to look up when the
	// *Secret field is set.
	Username, UsernameSecret string
	Password, PasswordSecret string
}

// Local reports a localhost registry.
func (r Registry) Local() bool { return localhostRegistry.MatchString(r.Server) }

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

var serviceName = regexp.MustCompile(`(?i)^[a-z0-9_-]+$`)

// New validates raw the way Kamal's Configuration#initialize does, in the
// same order, and builds the model.
func New(raw *yaml11.Value, opts Options) (*Config, error) {
	c := &Config{Raw: raw, opts: opts, Destination: opts.Destination}
	c.Version = opts.Version
	if c.Version == "" && opts.Env != nil {
		c.Version = opts.Env["VERSION"]
	}
	if c.Version == "" && opts.Env == nil {
		c.Version = os.Getenv("VERSION")
	}
	root := &validator{allowExt: true}
	if err := root.againstExample(raw, example("root")); err != nil {
		return nil, err
	}
	c.PrimaryRoleName = "web"
	if p := raw.Get("primary_role"); p.Present() {
		c.PrimaryRoleName = p.S()
	}
	c.Service = raw.Get("service").S()

	// Servers and roles.
	servers := raw.Get("servers")
	sv := &validator{ctx: "servers"}
	if servers != nil {
		if err := sv.validateType(servers, tArray, tHash, tNil); err != nil {
			return nil, err
		}
		if servers.Kind == yaml11.KindSeq {
			if err := sv.servers(servers); err != nil {
				return nil, err
			}
		}
	}
	c.envRoot = newEnvSpec(raw.Get("env"))
	c.envTags = map[string]*envSpec{}
	if tags := raw.Get("env").Get("tags"); tags != nil && tags.Kind == yaml11.KindMap {
		for _, t := range tags.Keys {
			c.envTags[t] = newEnvSpec(tags.Map[t])
		}
	}
	var roleNames []string
	if servers != nil && servers.Kind == yaml11.KindSeq {
		roleNames = []string{"web"}
	} else if servers != nil && servers.Kind == yaml11.KindMap {
		roleNames = append(roleNames, servers.Keys...)
		sort.Strings(roleNames)
	}
	var roles []*Role
	for _, name := range roleNames {
		r, err := c.newRole(name)
		if err != nil {
			return nil, err
		}
		roles = append(roles, r)
	}

	// Registry.
	reg := orEmptyAt(raw.Get("registry"), raw.Pos)
	if err := (&validator{ctx: "registry"}).registry(reg); err != nil {
		return nil, err
	}
	c.Registry = registryFrom(reg)

	// Accessories.
	if accs := raw.Get("accessories"); accs != nil && accs.Kind == yaml11.KindMap {
		for _, name := range accs.Keys {
			a, err := c.newAccessory(name, accs.Map[name], roles, servers)
			if err != nil {
				return nil, err
			}
			c.Accessories = append(c.Accessories, a)
		}
	}

	// Aliases.
	c.Aliases = map[string]string{}
	if al := raw.Get("aliases"); al != nil && al.Kind == yaml11.KindMap {
		for _, name := range al.Keys {
			vd := &validator{ctx: "aliases/" + name}
			v := al.Map[name]
			if err := vd.validateType(v, tString); err != nil {
				return nil, err
			}
			if !aliasName.MatchString(name) {
				return nil, vd.errAt(v, fmt.Sprintf("Invalid alias name: '%s'. Must only contain lowercase letters, alphanumeric, hyphens and underscores.", name))
			}
			if reservedAliases[name] {
				return nil, vd.errAt(v, fmt.Sprintf("Alias '%s' conflicts with a built-in command.", name))
			}
			c.Aliases[name] = v.S()
		}
	}

	// Boot.
	boot := orEmptyAt(raw.Get("boot"), raw.Pos)
	if err := (&validator{ctx: "boot"}).againstExample(boot, example("boot")); err != nil {
		return nil, err
	}
	c.Boot = Boot{Limit: boot.Get("limit").S(), Wait: int(boot.Get("wait").IntOr(0)), ParallelRoles: boot.Get("parallel_roles").Truthy()}

	// Builder.
	builder := orEmptyAt(raw.Get("builder"), raw.Pos)
	bv := &validator{ctx: "builder"}
	if err := bv.againstExample(builder, example("builder")); err != nil {
		return nil, err
	}
	if t := builder.Get("cache").Get("type"); t != nil && !t.IsNull() && t.S() != "gha" && t.S() != "registry" {
		return nil, bv.errAt(t, "Invalid cache type: "+t.S())
	}
	if builder.Get("arch").Blank() {
		return nil, bv.errAt(builder, "Builder arch not set")
	}
	if builder.Has("pack") && builder.Get("arch").Kind == yaml11.KindSeq && len(builder.Get("arch").Seq) > 1 {
		return nil, bv.errAt(builder.Get("arch"), "buildpacks only support building for one arch")
	}
	if builder.Get("local").IsFalse() && builder.Get("remote").Blank() {
		return nil, bv.errAt(builder.Get("local"), "Cannot disable local builds, no remote is set")
	}
	c.Builder = builderFrom(builder)
	if c.Version == "" {
		v, err := gitVersion(opts.Dir, builder.Get("context").IsNull())
		if err != nil {
			return nil, err
		}
		c.Version = v
	}

	// Env, logging, proxy, ssh, sshkit, output.
	if err := (&validator{ctx: "env"}).env(orEmpty(raw.Get("env"))); err != nil {
		return nil, err
	}
	if err := (&validator{ctx: "logging"}).againstExample(orEmpty(raw.Get("logging")), example("logging")); err != nil {
		return nil, err
	}
	if p := raw.Get("proxy"); p != nil && p.Kind != yaml11.KindBool {
		if err := (&validator{ctx: "proxy"}).proxy(p); err != nil {
			return nil, err
		}
	}
	if err := (&validator{ctx: "ssh"}).againstExample(orEmpty(raw.Get("ssh")), example("ssh")); err != nil {
		return nil, err
	}
	if err := (&validator{ctx: "sshkit"}).againstExample(orEmpty(raw.Get("sshkit")), example("sshkit")); err != nil {
		return nil, err
	}
	if raw.Has("output") {
		if err := (&validator{ctx: "output"}).againstExample(orEmpty(raw.Get("output")), example("output")); err != nil {
			return nil, err
		}
	}
	// Whole-configuration checks.
	if raw.Get("require_destination").Truthy() && c.Destination == "" {
		return nil, &Error{Kind: "ArgumentError", Msg: "You must specify a destination", Pos: keyPos(raw, "require_destination"), Err: ErrDestination}
	}
	for _, k := range []string{"service", "registry"} {
		if raw.Get(k).Blank() {
			return nil, cfgErr(raw.Pos, "Missing required configuration for %s", k)
		}
	}
	if c.imageName() == "" {
		return nil, cfgErr(raw.Pos, "Missing required configuration for image")
	}
	if servers == nil || servers.Kind == yaml11.KindNull {
		if raw.Get("accessories").Blank() {
			return nil, cfgErr(raw.Pos, "No servers or accessories specified")
		}
	} else {
		var primary *Role
		for _, r := range roles {
			if r.Name == c.PrimaryRoleName {
				primary = r
			}
		}
		if primary == nil {
			return nil, cfgErr(keyPos(raw, "primary_role"), "The primary_role %s isn't defined", c.PrimaryRoleName)
		}
		if len(primary.Hosts) == 0 {
			return nil, cfgErr(primary.raw.Pos, "No servers specified for the %s primary_role", primary.Name)
		}
		if !raw.Get("allow_empty_roles").Truthy() {
			for _, r := range roles {
				if len(r.Hosts) == 0 {
					return nil, cfgErr(r.raw.Pos, "No servers specified for the %s role. You can ignore this with allow_empty_roles: true", r.Name)
				}
			}
		}
	}
	if mv := raw.Get("minimum_version"); mv.Present() {
		have := opts.KamalVersion
		if have == "" {
			have = CompatVersion
		}
		if compareVersions(mv.S(), have) > 0 {
			return nil, cfgErr(mv.Pos, "Current version is %s, minimum required is %s", have, mv.S())
		}
	}
	c.RetainContainers = int(raw.Get("retain_containers").IntOr(5))
	if c.RetainContainers < 1 {
		return nil, cfgErr(raw.Get("retain_containers").Pos, "Must retain at least 1 container")
	}
	if !serviceName.MatchString(c.Service) {
		return nil, cfgErr(raw.Get("service").Pos, "Service name can only include alphanumeric characters, hyphens, and underscores")
	}
	c.HooksPath = ".kamal/hooks"
	if h := raw.Get("hooks_path"); h.Present() {
		c.HooksPath = h.S()
	}
	var traefikHooks []string
	for _, h := range []string{"pre-traefik-reboot", "post-traefik-reboot"} {
		p := filepath.Join(c.HooksPath, h)
		if !filepath.IsAbs(p) {
			p = filepath.Join(opts.Dir, p)
		}
		if _, err := os.Stat(p); err == nil {
			traefikHooks = append(traefikHooks, h)
		}
	}
	if len(traefikHooks) > 0 {
		return nil, cfgErr(yaml11.Pos{File: c.HooksPath}, "Found %s, these should be renamed to (pre|post)-proxy-reboot", strings.Join(traefikHooks, ", "))
	}
	for _, r := range roles {
		if r.RunningProxy && r.Proxy.Get("ssl").Truthy() && len(r.Hosts) > 1 && !customSSL(r.Proxy) {
			return nil, cfgErr(r.Proxy.Get("ssl").Pos, "SSL is only supported on a single server unless you provide custom certificates, found %d servers for role %s", len(r.Hosts), r.Name)
		}
	}
	tally := map[string]int{}
	var dupOrder []string
	for _, r := range roles {
		if r.RunningProxy && r.Proxy.Get("ssl").Truthy() {
			for _, h := range proxyHosts(r.Proxy) {
				tally[h]++
				if tally[h] == 2 {
					dupOrder = append(dupOrder, h)
				}
			}
		}
	}
	if len(dupOrder) > 0 {
		return nil, cfgErr(raw.Get("proxy").Pos, "Different roles can't share the same host for SSL: %s", strings.Join(dupOrder, ", "))
	}

	// Order roles primary first.
	for _, r := range roles {
		if r.Name == c.PrimaryRoleName {
			r.Primary = true
			c.Roles = append(c.Roles, r)
		}
	}
	for _, r := range roles {
		if r.Name != c.PrimaryRoleName {
			c.Roles = append(c.Roles, r)
		}
	}
	if c.Registry.Local() {
		if remote := builder.Get("remote"); remote.Present() && !strings.HasPrefix(remote.S(), "ssh://") {
			return nil, cfgErr(remote.Pos, "Local registry with remote builder requires an SSH URL (e.g., ssh://user@host)")
		}
	}
	if err := c.checkProxyRuns(); err != nil {
		return nil, err
	}
	if ho := raw.Get("hooks_output"); ho != nil && !ho.IsNull() {
		check := func(v *yaml11.Value, ctx string) error {
			if s := v.S(); s != "quiet" && s != "verbose" {
				return cfgErr(v.Pos, "Invalid hooks_output '%s', must be one of: quiet, verbose", s)
			}
			return nil
		}
		if ho.Kind == yaml11.KindMap {
			for _, k := range ho.Keys {
				if err := check(ho.Map[k], "hooks_output/"+k); err != nil {
					return nil, err
				}
			}
		} else if err := check(ho, "hooks_output"); err != nil {
			return nil, err
		}
	}

	c.ReadinessDelay = int(raw.Get("readiness_delay").IntOr(7))
	c.DeployTimeout = int(raw.Get("deploy_timeout").IntOr(30))
	c.DrainTimeout = int(raw.Get("drain_timeout").IntOr(30))
	c.SecretsPath = ".kamal/secrets"
	if s := raw.Get("secrets_path"); s.Present() {
		c.SecretsPath = s.S()
		if sp, ok := opts.Secrets.(interface{ SetSecretsPath(string) }); ok {
			sp.SetSecretsPath(c.SecretsPath)
		}
	}
	c.AssetPath = raw.Get("asset_path").S()
	c.ErrorPagesPath = raw.Get("error_pages_path").S()
	return c, nil
}

func keyPos(v *yaml11.Value, key string) yaml11.Pos {
	if v != nil && v.KeyPos != nil {
		if p, ok := v.KeyPos[key]; ok {
			return p
		}
	}
	if v != nil {
		return v.Pos
	}
	return yaml11.Pos{}
}

func orEmpty(v *yaml11.Value) *yaml11.Value { return orEmptyAt(v, yaml11.Pos{}) }

// orEmptyAt is v, or an empty hash positioned at v or, when v is absent, at at.
func orEmptyAt(v *yaml11.Value, at yaml11.Pos) *yaml11.Value {
	if v == nil || v.Kind == yaml11.KindNull {
		m := yaml11.NewMap()
		m.Pos = at
		if v != nil {
			m.Pos = v.Pos
		}
		return m
	}
	return v
}

func registryFrom(reg *yaml11.Value) Registry {
	r := Registry{Server: reg.Get("server").S()}
	if !reg.Has("server") || reg.Get("server").IsNull() {
		r.Server = ""
	}
	cred := func(v *yaml11.Value) (string, string) {
		if v != nil && v.Kind == yaml11.KindSeq && len(v.Seq) == 1 {
			return "", v.Seq[0].S()
		}
		return v.S(), ""
	}
	r.Username, r.UsernameSecret = cred(reg.Get("username"))
	r.Password, r.PasswordSecret = cred(reg.Get("password"))
	return r
}

func (c *Config) newRole(name string) (*Role, error) {
	servers := c.Raw.Get("servers")
	var roleCfg *yaml11.Value
	if servers.Kind == yaml11.KindSeq {
		roleCfg = yaml11.NewMap()
		roleCfg.Pos = servers.Pos
	} else {
		roleCfg = servers.Map[name]
		if roleCfg == nil {
			roleCfg = &yaml11.Value{Kind: yaml11.KindNull, Pos: keyPos(servers, name)}
		} else if roleCfg.Kind == yaml11.KindNull {
			roleCfg.Pos = keyPos(servers, name)
		}
	}
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
	r := &Role{Name: name, raw: roleCfg, Primary: name == c.PrimaryRoleName, HostTags: map[string][]string{}}
	if err := (&validator{ctx: "servers/" + name + "/env"}).env(orEmpty(spec.Get("env"))); err != nil {
		return nil, err
	}
	if err := (&validator{ctx: "servers/" + name + "/logging"}).againstExample(orEmpty(spec.Get("logging")), example("logging")); err != nil {
		return nil, err
	}
	ps := spec.Get("proxy")
	if r.Primary {
		r.RunningProxy = !ps.IsFalse()
	} else {
		r.RunningProxy = ps.Truthy()
	}
	if r.RunningProxy {
		pc := yaml11.NewMap()
		if ps != nil && ps.Kind == yaml11.KindMap {
			pc = ps
		}
		if err := (&validator{ctx: "servers/" + name + "/proxy"}).proxy(pc); err != nil {
			return nil, err
		}
		rootProxy := c.Raw.Get("proxy")
		if rootProxy == nil || rootProxy.Kind != yaml11.KindMap {
			rootProxy = yaml11.NewMap()
		}
		r.Proxy = yaml11.DeepMerge(rootProxy, pc)
	}
	// Hosts.
	var hostList *yaml11.Value
	if servers.Kind == yaml11.KindSeq {
		hostList = servers
	} else if roleCfg.Kind == yaml11.KindSeq {
		hostList = roleCfg
	} else {
		hostList = spec.Get("hosts")
	}
	if hostList != nil && hostList.Kind == yaml11.KindSeq {
		for _, h := range hostList.Seq {
			switch h.Kind {
			case yaml11.KindMap:
				if len(h.Keys) == 0 {
					continue
				}
				host := h.Keys[0]
				if _, seen := r.HostTags[host]; !seen {
					r.Hosts = append(r.Hosts, host)
				}
				r.HostTags[host] = h.Map[host].Strings()
			case yaml11.KindString:
				if _, seen := r.HostTags[h.Str]; !seen {
					r.Hosts = append(r.Hosts, h.Str)
				}
				r.HostTags[h.Str] = nil
			}
		}
	}
	r.Cmd = spec.Get("cmd")
	r.Options = spec.Get("options")
	r.env = newEnvSpec(spec.Get("env"))
	rootLog := c.Raw.Get("logging")
	if rootLog == nil || rootLog.Kind != yaml11.KindMap {
		rootLog = yaml11.NewMap()
	}
	roleLog := spec.Get("logging")
	if roleLog == nil || roleLog.Kind != yaml11.KindMap {
		roleLog = yaml11.NewMap()
	}
	r.Logging = yaml11.DeepMerge(rootLog, roleLog)
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
	if st := spec.Get("stop_timeout"); st != nil && st.Kind == yaml11.KindInt {
		n := st.Int
		r.StopTimeout = &n
	} else if st := c.Raw.Get("stop_timeout"); st != nil && st.Kind == yaml11.KindInt {
		n := st.Int
		r.StopTimeout = &n
	}
	return r, nil
}

func (c *Config) newAccessory(name string, cfg *yaml11.Value, roles []*Role, servers *yaml11.Value) (*Accessory, error) {
	vd := &validator{ctx: "accessories/" + name}
	if cfg == nil {
		cfg = &yaml11.Value{Kind: yaml11.KindNull}
	}
	if err := vd.againstExample(cfg, example("accessory")); err != nil {
		return nil, err
	}
	n := 0
	for _, k := range []string{"host", "hosts", "role", "roles", "tag", "tags"} {
		if cfg.Has(k) {
			n++
		}
	}
	if n != 1 {
		return nil, vd.errAt(cfg, "specify one of `host`, `hosts`, `role`, `roles`, `tag` or `tags`")
	}
	if err := vd.labels(cfg.Get("labels")); err != nil {
		return nil, err
	}
	roleByName := map[string]*Role{}
	for _, r := range roles {
		roleByName[r.Name] = r
	}
	if rs := cfg.Get("roles"); rs != nil && rs.Kind == yaml11.KindSeq {
		var missing []string
		for _, r := range rs.Strings() {
			if roleByName[r] == nil {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			return nil, vd.errAt(rs, "unknown roles "+strings.Join(missing, ", "))
		}
	} else if r := cfg.Get("role"); r != nil && !r.IsNull() && roleByName[r.S()] == nil {
		return nil, vd.errAt(r, "unknown role "+r.S())
	}
	if err := (&validator{ctx: "accessories/" + name + "/env"}).env(orEmpty(cfg.Get("env"))); err != nil {
		return nil, err
	}
	a := &Accessory{Name: name, raw: cfg, env: newEnvSpec(cfg.Get("env"))}
	if p := cfg.Get("proxy"); p.Present() {
		if p.Kind == yaml11.KindMap {
			if err := (&validator{ctx: "accessories/" + name + "/proxy"}).proxy(p); err != nil {
				return nil, err
			}
			a.Proxy = p
		} else {
			a.Proxy = yaml11.NewMap()
		}
	}
	if reg := cfg.Get("registry"); reg.Present() {
		if err := (&validator{ctx: "accessories/" + name + "/registry"}).registry(reg); err != nil {
			return nil, err
		}
		r := registryFrom(reg)
		a.Registry = &r
	}
	a.ServiceName = c.Service + "-" + name
	if s := cfg.Get("service"); s != nil && s.Kind == yaml11.KindString {
		a.ServiceName = s.Str
	}
	img := cfg.Get("image").S()
	if a.Registry != nil && a.Registry.Server != "" {
		img = a.Registry.Server + "/" + img
	}
	a.Image = img
	switch {
	case cfg.Has("host"):
		a.Hosts = []string{cfg.Get("host").S()}
	case cfg.Has("hosts"):
		a.Hosts = cfg.Get("hosts").Strings()
	case cfg.Has("role"):
		if r := roleByName[cfg.Get("role").S()]; r != nil {
			a.Hosts = append(a.Hosts, r.Hosts...)
		}
	case cfg.Has("roles"):
		for _, rn := range cfg.Get("roles").Strings() {
			if r := roleByName[rn]; r != nil {
				a.Hosts = append(a.Hosts, r.Hosts...)
			}
		}
	case cfg.Has("tag"), cfg.Has("tags"):
		var tags []string
		if cfg.Has("tag") {
			tags = []string{cfg.Get("tag").S()}
		} else {
			tags = cfg.Get("tags").Strings()
		}
		for _, tag := range tags {
			if servers == nil || servers.Kind != yaml11.KindMap {
				continue
			}
			for _, rn := range servers.Keys {
				list := servers.Map[rn]
				if list != nil && list.Kind == yaml11.KindMap {
					list = list.Get("hosts")
				}
				if list == nil || list.Kind != yaml11.KindSeq {
					continue
				}
				for _, h := range list.Seq {
					if h.Kind != yaml11.KindMap || len(h.Keys) == 0 {
						continue
					}
					tv := h.Map[h.Keys[0]]
					match := false
					if tv != nil && tv.Kind == yaml11.KindSeq {
						for _, t := range tv.Strings() {
							match = match || t == tag
						}
					} else if tv != nil {
						match = strings.Contains(tv.S(), tag)
					}
					if match {
						a.Hosts = append(a.Hosts, h.Keys[0])
					}
				}
			}
		}
	}
	if a.Hosts == nil {
		a.Hosts = []string{}
	}
	return a, nil
}

func customSSL(proxy *yaml11.Value) bool {
	ssl := proxy.Get("ssl")
	return ssl != nil && ssl.Kind == yaml11.KindMap && ssl.Get("certificate_pem").Present() && ssl.Get("private_key_pem").Present()
}

func proxyHosts(proxy *yaml11.Value) []string {
	if hs := proxy.Get("hosts"); hs != nil && hs.Kind == yaml11.KindSeq {
		return hs.Strings()
	}
	if h := proxy.Get("host"); h != nil && h.Kind == yaml11.KindString {
		return strings.Split(h.Str, ",")
	}
	return []string{}
}

func pathPrefixes(proxy *yaml11.Value) []string {
	if hs := proxy.Get("path_prefixes"); hs != nil && hs.Kind == yaml11.KindSeq {
		return hs.Strings()
	}
	if h := proxy.Get("path_prefix"); h != nil && h.Kind == yaml11.KindString {
		return strings.Split(h.Str, ",")
	}
	return nil
}

// compareVersions compares like Gem::Version (numeric segments numerically,
// a letter segment marks a prerelease).
func compareVersions(a, b string) int {
	seg := regexp.MustCompile(`[0-9]+|[a-zA-Z]+`)
	as, bs := seg.FindAllString(strings.TrimPrefix(a, "v"), -1), seg.FindAllString(strings.TrimPrefix(b, "v"), -1)
	for i := 0; i < len(as) || i < len(bs); i++ {
		x, y := "0", "0"
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xn, xerr := strconv.ParseInt(x, 10, 64)
		yn, yerr := strconv.ParseInt(y, 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
		case xerr == nil:
			return 1
		case yerr == nil:
			return -1
		default:
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
		}
	}
	return 0
}

// Role returns the named role, or nil.
func (c *Config) Role(name string) *Role {
	for _, r := range c.Roles {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Accessory returns the named accessory, or nil.
func (c *Config) Accessory(name string) *Accessory {
	for _, a := range c.Accessories {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// imageName is `image`, or the service name with a local registry.
func (c *Config) imageName() string {
	if img := c.Raw.Get("image"); img.Present() {
		return img.S()
	}
	if c.Registry.Local() {
		return c.Service
	}
	return ""
}

// Repository is `<registry.server>/<image>`.
func (c *Config) Repository() string {
	img := c.imageName()
	if c.Registry.Server != "" {
		return c.Registry.Server + "/" + img
	}
	return img
}

// Image is the app image with its version.
func (c *Config) Image() string { return c.Repository() + ":" + c.Version }

// LatestTag is `latest[-dest]`.
func (c *Config) LatestTag() string {
	if c.Destination != "" {
		return "latest-" + c.Destination
	}
	return "latest"
}

// ServiceAndDestination is `<service>[-<dest>]`.
func (c *Config) ServiceAndDestination() string {
	if c.Destination != "" {
		return c.Service + "-" + c.Destination
	}
	return c.Service
}

// AppDirectory is `.kamal/apps/<service>[-<dest>]`.
func (c *Config) AppDirectory() string { return path.Join(".kamal/apps", c.ServiceAndDestination()) }

// EnvDirectory is the app's env-file directory on a host.
func (c *Config) EnvDirectory() string { return path.Join(c.AppDirectory(), "env") }

// ContainerPrefix is `<service>-<role>[-<dest>]`.
func (c *Config) ContainerPrefix(role string) string {
	s := c.Service + "-" + role
	if c.Destination != "" {
		s += "-" + c.Destination
	}
	return s
}

// ContainerName is `<service>-<role>[-<dest>]-<version>`.
func (c *Config) ContainerName(role, version string) string {
	if version == "" {
		version = c.Version
	}
	return c.ContainerPrefix(role) + "-" + version
}

// ProxyHosts are the hosts of proxy roles and proxy accessories.
func (c *Config) ProxyHosts() []string {
	var out []string
	seen := map[string]bool{}
	add := func(hs []string) {
		for _, h := range hs {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	for _, r := range c.Roles {
		if r.RunningProxy {
			add(r.Hosts)
		}
	}
	for _, a := range c.Accessories {
		if a.Proxy != nil {
			add(a.Hosts)
		}
	}
	return out
}

// AllHosts are role and accessory hosts.
func (c *Config) AllHosts() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range c.Roles {
		for _, h := range r.Hosts {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	for _, a := range c.Accessories {
		for _, h := range a.Hosts {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
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

// proxyRun returns the proxy.run configuration in effect on host, if any.
func (c *Config) proxyRun(host string) *yaml11.Value {
	for _, r := range c.Roles {
		if !r.RunningProxy {
			continue
		}
		for _, h := range r.Hosts {
			if h == host {
				if run := r.Proxy.Get("run"); run.Present() {
					return run
				}
			}
		}
	}
	for _, a := range c.Accessories {
		if a.Proxy == nil {
			continue
		}
		for _, h := range a.Hosts {
			if h == host {
				if run := a.Proxy.Get("run"); run.Present() {
					return run
				}
			}
		}
	}
	return nil
}

func (c *Config) checkProxyRuns() error {
	for _, host := range c.ProxyHosts() {
		var first *yaml11.Value
		set := false
		check := func(p *yaml11.Value) error {
			run := p.Get("run")
			if !run.Present() {
				run = nil
			}
			if !set {
				first, set = run, true
				return nil
			}
			if canonical(first) != canonical(run) {
				return cfgErr(keyPos(p, "run"), "Conflicting proxy run configurations for host %s", host)
			}
			return nil
		}
		for _, r := range c.Roles {
			if r.RunningProxy && contains(r.Hosts, host) {
				if err := check(r.Proxy); err != nil {
					return err
				}
			}
		}
		for _, a := range c.Accessories {
			if a.Proxy != nil && contains(a.Hosts, host) {
				if err := check(a.Proxy); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func canonical(v *yaml11.Value) string {
	if v == nil {
		return "nil"
	}
	switch v.Kind {
	case yaml11.KindMap:
		keys := append([]string(nil), v.Keys...)
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString("{")
		for _, k := range keys {
			b.WriteString(strconv.Quote(k) + ":" + canonical(v.Map[k]) + ",")
		}
		return b.String() + "}"
	case yaml11.KindSeq:
		var b strings.Builder
		b.WriteString("[")
		for _, e := range v.Seq {
			b.WriteString(canonical(e) + ",")
		}
		return b.String() + "]"
	}
	return fmt.Sprintf("%d:%s", v.Kind, v.S())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// BootLimit is how many hosts boot at once (0 = all): boot.limit, where
// "N%" is N percent of all hosts (roles and accessories), rounded down, at
// least 1.
func (c *Config) BootLimit() int {
	l := strings.TrimSpace(c.Boot.Limit)
	if l == "" {
		return 0
	}
	if pct, ok := strings.CutSuffix(l, "%"); ok {
		n, _ := strconv.Atoi(strings.TrimSpace(pct))
		return max(len(c.AllHosts())*n/100, 1)
	}
	n, _ := strconv.Atoi(l)
	return n
}
