package kctl

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kctl-dev/kctl/internal/kamalconfig"
	"github.com/kctl-dev/kctl/internal/spec"
)

// selection is Kamal's -r/--roles, -h/--hosts and -p/--primary.
type selection struct {
	Roles   []string
	Hosts   []string
	Primary bool
}

// requestOptions say which Kamal command a request is for.
type requestOptions struct {
	Command         string
	Selection       selection
	SkipPull        bool
	SkipProxyBoot   bool
	SkipPrune       bool
	WithAccessories bool
	Message         string
}

// matchAny reports whether name matches one of Kamal's comma-list patterns
// (`*` wildcards, as File.fnmatch).
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok || p == name {
			return true
		}
	}
	return false
}

// selectedHosts applies Kamal's host and role selection
// (lib/kamal/commander/specifics.rb): roles are the requested roles that
// keep at least one selected host; hosts are the requested hosts among
// those roles' hosts.
func selectedHosts(cfg *kamalconfig.Config, sel selection) (map[string][]string, error) {
	out := map[string][]string{}
	matchedHost := len(sel.Hosts) == 0
	for _, r := range cfg.Roles {
		if len(sel.Roles) > 0 && !matchAny(sel.Roles, r.Name) {
			continue
		}
		for _, h := range r.Hosts {
			if len(sel.Hosts) > 0 && !matchAny(sel.Hosts, h) {
				continue
			}
			matchedHost = true
			out[r.Name] = append(out[r.Name], h)
		}
	}
	if len(sel.Roles) > 0 && len(out) == 0 {
		return nil, fmt.Errorf("no --roles match for %s", strings.Join(sel.Roles, ","))
	}
	if !matchedHost {
		return nil, fmt.Errorf("no --hosts match for %s", strings.Join(sel.Hosts, ","))
	}
	if sel.Primary {
		first := ""
		for _, r := range cfg.Roles {
			if hs := out[r.Name]; len(hs) > 0 {
				first = hs[0]
				break
			}
		}
		for role, hs := range out {
			var keep []string
			for _, h := range hs {
				if h == first {
					keep = append(keep, h)
				}
			}
			if len(keep) == 0 {
				delete(out, role)
			} else {
				out[role] = keep
			}
		}
	}
	return out, nil
}

// bootLimit resolves boot.limit: a number, or a percentage of all hosts
// (accessory hosts included, as Kamal counts), at least 1.
func bootLimit(cfg *kamalconfig.Config) (uint32, error) {
	l := strings.TrimSpace(cfg.Boot.Limit)
	if l == "" {
		return 0, nil
	}
	if pct, ok := strings.CutSuffix(l, "%"); ok {
		if _, err := strconv.ParseFloat(pct, 64); err != nil {
			return 0, fmt.Errorf("boot/limit: %q is not a number or a percentage", l)
		}
		// Kamal: [all_hosts.count * limit.to_i / 100, 1].max — the integer
		// part of the percentage, integer division, every host of every
		// role and accessory whatever --hosts/--roles select.
		whole, _, _ := strings.Cut(strings.TrimSpace(pct), ".")
		p, _ := strconv.Atoi(whole)
		return uint32(max(len(cfg.AllHosts())*p/100, 1)), nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("boot/limit: %q is not a number or a percentage", l)
	}
	return uint32(n), nil
}

// buildRequest resolves everything the controller needs for a deploy from
// the loaded config (whose secrets resolver is already set).
func buildRequest(cfg *kamalconfig.Config, dir string, o requestOptions) (*deployv1.Request, error) {
	hosts, err := selectedHosts(cfg, o.Selection)
	if err != nil {
		return nil, err
	}
	limit, err := bootLimit(cfg)
	if err != nil {
		return nil, err
	}
	registry, err := cfg.RegistryAuth()
	if err != nil {
		return nil, err
	}
	req := &deployv1.Request{
		Command: o.Command, Service: cfg.Service, Destination: cfg.Destination, Version: cfg.Version,
		Repository: cfg.Repository(), Image: cfg.Image(), LatestTag: cfg.LatestTag(),
		PrimaryRole: cfg.PrimaryRoleName, Registry: registry, RetainContainers: uint32(cfg.RetainContainers),
		Boot:     &deployv1.Boot{Limit: limit, WaitSeconds: uint32(cfg.Boot.Wait), ParallelRoles: cfg.Boot.ParallelRoles},
		SkipPull: o.SkipPull, SkipProxyBoot: o.SkipProxyBoot, SkipPrune: o.SkipPrune, Message: o.Message,
	}
	selected := map[string]bool{}
	for _, r := range cfg.Roles {
		hs := hosts[r.Name]
		if len(hs) == 0 {
			continue
		}
		role := &deployv1.Role{
			Name: r.Name, Proxy: cfg.ProxyDeploy(r.Name), Readiness: cfg.Readiness(r.Name), Stop: cfg.StopPolicy(r.Name),
		}
		if role.Proxy != nil && cfg.ErrorPagesPath != "" {
			pages, err := errorPages(cfg, dir)
			if err != nil {
				return nil, err
			}
			role.Proxy.Files = append(role.Proxy.Files, pages...)
		}
		for _, h := range hs {
			selected[h] = true
			ct := cfg.AppContainer(r.Name, h)
			secrets, err := cfg.SecretEnv(r.Name, h)
			if err != nil {
				return nil, err
			}
			ct.SecretEnv = secrets
			role.Hosts = append(role.Hosts, &deployv1.HostContainer{Host: h, Container: ct})
		}
		req.Roles = append(req.Roles, role)
	}
	if len(req.Roles) == 0 {
		return nil, fmt.Errorf("no hosts selected: deploy.yml names no servers for the selected roles")
	}
	if !o.SkipProxyBoot {
		for _, h := range cfg.ProxyHosts() {
			if selected[h] {
				req.ProxyHosts = append(req.ProxyHosts, &deployv1.ProxyHost{Host: h, Boot: cfg.ProxyBoot(h)})
			}
		}
	}
	if o.WithAccessories {
		for _, a := range cfg.Accessories {
			auth, err := cfg.AccessoryRegistryAuth(a.Name)
			if err != nil {
				return nil, err
			}
			// Without a registry of its own, an accessory pulls with the
			// app's registry login when its image lives there (Kamal logs
			// every host in to that registry); credentials never go to
			// another registry.
			if auth == nil {
				auth = spec.AuthFor(a.Image, registry)
			}
			files, err := cfg.AccessoryFiles(a.Name)
			if err != nil {
				return nil, err
			}
			acc := &deployv1.Accessory{Name: a.Name, Proxy: cfg.AccessoryProxyDeploy(a.Name), Registry: auth}
			for _, h := range a.Hosts {
				ct := cfg.AccessoryContainer(a.Name, h)
				if err := requireSecrets(ct, "accessories/"+a.Name+"/env/secret"); err != nil {
					return nil, err
				}
				ct.Files = files
				acc.Hosts = append(acc.Hosts, &deployv1.HostContainer{Host: h, Container: ct})
			}
			req.Accessories = append(req.Accessories, acc)
		}
	}
	if n := proto.Size(req); n > maxRequestBytes {
		return nil, fmt.Errorf("the deploy request is %.1f MiB, over kctl's %d MiB limit: accessory files and error pages travel inside it, so keep them small (or bake them into images)",
			float64(n)/(1<<20), maxRequestBytes>>20)
	}
	return req, nil
}

// maxRequestBytes keeps a deploy request, which is stored in Raft and sent
// over gRPC (4 MiB messages), well within both limits.
const maxRequestBytes = 3 << 20

// errorPages reads error_pages_path's `4xx.html`/`5xx.html` pages for the
// proxy's apps-config dir, where Kamal uploads them:
// `<svc>/error_pages/<version>/`.
func errorPages(cfg *kamalconfig.Config, dir string) ([]*specv1.File, error) {
	src := cfg.ErrorPagesPath
	if !filepath.IsAbs(src) {
		src = filepath.Join(dir, src)
	}
	var out []*specv1.File
	for _, pattern := range []string{"4??.html", "5??.html"} {
		matches, err := filepath.Glob(filepath.Join(src, pattern))
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				return nil, fmt.Errorf("error_pages_path: %w", err)
			}
			out = append(out, &specv1.File{
				Path:    path.Join(cfg.ServiceAndDestination(), "error_pages", cfg.Version, filepath.Base(m)),
				Content: b, Mode: 0o644,
			})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("error_pages_path: no 4xx.html or 5xx.html pages in %s", src)
	}
	return out, nil
}

// requireSecrets fails when a secret the spec names did not resolve (the
// config layer leaves such entries out), naming the secret, never a value.
func requireSecrets(ct *specv1.Container, keyPath string) error {
	have := map[string]bool{}
	for _, kv := range ct.GetSecretEnv() {
		have[kv.GetKey()] = true
	}
	for _, k := range ct.GetSecretKeys() {
		name, secret, ok := strings.Cut(k, ":")
		if !ok {
			secret = name
		}
		if !have[name] {
			return fmt.Errorf("%s: Secret '%s' not found (add it to .kamal/secrets)", keyPath, secret)
		}
	}
	return nil
}
