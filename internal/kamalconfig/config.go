package kamalconfig

import (
	"path"
	"slices"
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

	// declared are the roles in name order, as validated (Roles reorders them).
	declared []*Role
	envRoot  *envSpec
	envTags  map[string]*envSpec
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

// Role returns the named role, or nil.
func (c *Config) Role(name string) *Role { return findRole(c.Roles, name) }

func findRole(roles []*Role, name string) *Role {
	if i := slices.IndexFunc(roles, func(r *Role) bool { return r.Name == name }); i >= 0 {
		return roles[i]
	}
	return nil
}

// Accessory returns the named accessory, or nil.
func (c *Config) Accessory(name string) *Accessory {
	if i := slices.IndexFunc(c.Accessories, func(a *Accessory) bool { return a.Name == name }); i >= 0 {
		return c.Accessories[i]
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
