package kamalconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

// The whole-configuration checks of Kamal's Configuration#initialize, run
// by New after each section has been validated on its own.

// checkRequired is ensure_destination_if_required and
// ensure_required_keys_present.
func (c *Config) checkRequired() error {
	raw := c.Raw
	if raw.Get("require_destination").Truthy() && c.Destination == "" {
		return &Error{Kind: "ArgumentError", Msg: "You must specify a destination", Pos: keyPos(raw, "require_destination"), Err: ErrDestination}
	}
	for _, k := range []string{"service", "registry"} {
		if raw.Get(k).Blank() {
			return cfgErr(raw.Pos, "Missing required configuration for %s", k)
		}
	}
	if c.imageName() == "" {
		return cfgErr(raw.Pos, "Missing required configuration for image")
	}
	return nil
}

// checkServers requires servers or accessories, a primary role with
// hosts, and (unless allow_empty_roles) hosts for every role.
func (c *Config) checkServers() error {
	raw := c.Raw
	if servers := raw.Get("servers"); servers == nil || servers.Kind == yaml11.KindNull {
		if raw.Get("accessories").Blank() {
			return cfgErr(raw.Pos, "No servers or accessories specified")
		}
		return nil
	}
	var primary *Role
	for _, r := range c.declared {
		if r.Name == c.PrimaryRoleName {
			primary = r
		}
	}
	if primary == nil {
		return cfgErr(keyPos(raw, "primary_role"), "The primary_role %s isn't defined", c.PrimaryRoleName)
	}
	if len(primary.Hosts) == 0 {
		return cfgErr(primary.raw.Pos, "No servers specified for the %s primary_role", primary.Name)
	}
	if raw.Get("allow_empty_roles").Truthy() {
		return nil
	}
	for _, r := range c.declared {
		if len(r.Hosts) == 0 {
			return cfgErr(r.raw.Pos, "No servers specified for the %s role. You can ignore this with allow_empty_roles: true", r.Name)
		}
	}
	return nil
}

// checkLimits checks minimum_version, retain_containers and the service name.
func (c *Config) checkLimits() error {
	raw := c.Raw
	if mv := raw.Get("minimum_version"); mv.Present() {
		have := c.opts.KamalVersion
		if have == "" {
			have = CompatVersion
		}
		if compareVersions(mv.S(), have) > 0 {
			return cfgErr(mv.Pos, "Current version is %s, minimum required is %s", have, mv.S())
		}
	}
	c.RetainContainers = int(raw.Get("retain_containers").IntOr(5))
	if c.RetainContainers < 1 {
		return cfgErr(raw.Get("retain_containers").Pos, "Must retain at least 1 container")
	}
	if !serviceName.MatchString(c.Service) {
		return cfgErr(raw.Get("service").Pos, "Service name can only include alphanumeric characters, hyphens, and underscores")
	}
	return nil
}

// checkHooks reads hooks_path and refuses Kamal 1's traefik hooks.
func (c *Config) checkHooks() error {
	c.HooksPath = ".kamal/hooks"
	if h := c.Raw.Get("hooks_path"); h.Present() {
		c.HooksPath = h.S()
	}
	var traefikHooks []string
	for _, h := range []string{"pre-traefik-reboot", "post-traefik-reboot"} {
		p := filepath.Join(c.HooksPath, h)
		if !filepath.IsAbs(p) {
			p = filepath.Join(c.opts.Dir, p)
		}
		if _, err := os.Stat(p); err == nil {
			traefikHooks = append(traefikHooks, h)
		}
	}
	if len(traefikHooks) > 0 {
		return cfgErr(yaml11.Pos{File: c.HooksPath}, "Found %s, these should be renamed to (pre|post)-proxy-reboot", strings.Join(traefikHooks, ", "))
	}
	return nil
}

// checkSSL allows automatic SSL on one server per role, and each SSL host
// in one role only.
func (c *Config) checkSSL() error {
	for _, r := range c.declared {
		if r.RunningProxy && r.Proxy.Get("ssl").Truthy() && len(r.Hosts) > 1 && !customSSL(r.Proxy) {
			return cfgErr(r.Proxy.Get("ssl").Pos, "SSL is only supported on a single server unless you provide custom certificates, found %d servers for role %s", len(r.Hosts), r.Name)
		}
	}
	tally := map[string]int{}
	var dupOrder []string
	for _, r := range c.declared {
		if !r.RunningProxy || !r.Proxy.Get("ssl").Truthy() {
			continue
		}
		for _, h := range proxyHosts(r.Proxy) {
			tally[h]++
			if tally[h] == 2 {
				dupOrder = append(dupOrder, h)
			}
		}
	}
	if len(dupOrder) > 0 {
		return cfgErr(c.Raw.Get("proxy").Pos, "Different roles can't share the same host for SSL: %s", strings.Join(dupOrder, ", "))
	}
	return nil
}

// orderRoles puts the primary role first, then the others by name.
func (c *Config) orderRoles() error {
	for _, r := range c.declared {
		if r.Name == c.PrimaryRoleName {
			r.Primary = true
			c.Roles = append(c.Roles, r)
		}
	}
	for _, r := range c.declared {
		if r.Name != c.PrimaryRoleName {
			c.Roles = append(c.Roles, r)
		}
	}
	return nil
}

// checkLocalRegistry requires an SSH remote builder with a local registry.
func (c *Config) checkLocalRegistry() error {
	if !c.Registry.Local() {
		return nil
	}
	if remote := c.Builder.Raw.Get("remote"); remote.Present() && !strings.HasPrefix(remote.S(), "ssh://") {
		return cfgErr(remote.Pos, "Local registry with remote builder requires an SSH URL (e.g., ssh://user@host)")
	}
	return nil
}

// checkHooksOutput accepts quiet or verbose, globally or per hook.
func (c *Config) checkHooksOutput() error {
	ho := c.Raw.Get("hooks_output")
	if ho == nil || ho.IsNull() {
		return nil
	}
	check := func(v *yaml11.Value) error {
		if s := v.S(); s != "quiet" && s != "verbose" {
			return cfgErr(v.Pos, "Invalid hooks_output '%s', must be one of: quiet, verbose", s)
		}
		return nil
	}
	if ho.Kind != yaml11.KindMap {
		return check(ho)
	}
	for _, k := range ho.Keys {
		if err := check(ho.Map[k]); err != nil {
			return err
		}
	}
	return nil
}

// loadSettings reads the timeouts and paths nothing else validates.
func (c *Config) loadSettings() error {
	raw := c.Raw
	c.ReadinessDelay = int(raw.Get("readiness_delay").IntOr(7))
	c.DeployTimeout = int(raw.Get("deploy_timeout").IntOr(30))
	c.DrainTimeout = int(raw.Get("drain_timeout").IntOr(30))
	c.SecretsPath = ".kamal/secrets"
	if s := raw.Get("secrets_path"); s.Present() {
		c.SecretsPath = s.S()
		if sp, ok := c.opts.Secrets.(interface{ SetSecretsPath(string) }); ok {
			sp.SetSecretsPath(c.SecretsPath)
		}
	}
	c.AssetPath = raw.Get("asset_path").S()
	c.ErrorPagesPath = raw.Get("error_pages_path").S()
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
