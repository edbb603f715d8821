package kctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/builder"
	"github.com/kctl-dev/kctl/internal/hooks"
	"github.com/kctl-dev/kctl/internal/kamalconfig"
	"github.com/kctl-dev/kctl/internal/secrets"
)

// targetFlags are Kamal's global options for commands that read a project.
type targetFlags struct {
	configFile  string
	destination string
	version     string
	roles       []string
	hosts       []string
	primary     bool
	skipHooks   bool
}

// addTargetFlags adds Kamal's -c, -d, --version, -r, -h, -p and -H. Kamal
// uses -h for --hosts, so the command's help flag loses its shorthand.
func addTargetFlags(cmd *cobra.Command, p *targetFlags) {
	f := cmd.Flags()
	f.Bool("help", false, "help for "+cmd.Name())
	f.StringVarP(&p.configFile, "config-file", "c", "config/deploy.yml", "path to the config file")
	f.StringVarP(&p.destination, "destination", "d", "", "destination: also loads config/deploy.DEST.yml")
	f.StringVar(&p.version, "version", "", "version to deploy (default $VERSION, then the git HEAD SHA)")
	f.StringSliceVarP(&p.roles, "roles", "r", nil, "run on these roles only (comma list, * wildcards)")
	f.StringSliceVarP(&p.hosts, "hosts", "h", nil, "run on these hosts (agent names) only (comma list, * wildcards)")
	f.BoolVarP(&p.primary, "primary", "p", false, "run on the primary host only")
	f.BoolVarP(&p.skipHooks, "skip-hooks", "H", false, "do not run hooks")
}

// project is a loaded Kamal project: config, secrets and hooks.
type project struct {
	dir     string
	cfg     *kamalconfig.Config
	secrets *secrets.Store
	hooks   *hooks.Runner
	flags   targetFlags
}

// loadProject reads the project in the working directory. When the version
// is not given it is resolved as Kamal does (--version, $VERSION, git).
func loadProject(ctx context.Context, cmd *cobra.Command, p targetFlags, needVersion bool) (*project, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	version := p.version
	if version == "" {
		version = os.Getenv("VERSION")
	}
	var store *secrets.Store
	resolve := kamalconfig.SecretFunc(func(name string) (string, error) {
		if store == nil {
			store = secrets.New(secrets.Options{Dir: dir, Destination: p.destination})
		}
		return store.Secret(name)
	})
	load := func(v string) (*kamalconfig.Config, error) {
		return kamalconfig.Load(kamalconfig.Options{Dir: dir, ConfigFile: p.configFile, Destination: p.destination, Version: v, Secrets: resolve})
	}
	if version == "" {
		// Kamal's default: the git HEAD SHA (with _uncommitted_ on a dirty
		// tree unless the build uses builder.context, checked below).
		v, err := builder.Version(ctx, dir, true)
		switch {
		case err == nil:
			version = v
		case needVersion:
			return nil, err
		default:
			version = "unversioned" // commands that need no version (lock, audit, prune)
		}
	}
	cfg, err := load(version)
	if err != nil {
		return nil, err
	}
	if store == nil {
		store = secrets.New(secrets.Options{Dir: dir, Path: cfg.SecretsPath, Destination: p.destination})
	}
	if p.version == "" && os.Getenv("VERSION") == "" && needVersion && cfg.Builder.Context == "" {
		v, err := builder.Version(ctx, dir, false)
		if err != nil {
			return nil, err
		}
		if v != version {
			if cfg, err = load(v); err != nil {
				return nil, err
			}
		}
	}
	pr := &project{dir: dir, cfg: cfg, secrets: store, flags: p}
	pr.hooks = &hooks.Runner{Dir: cfg.HooksPath, WorkDir: dir, Output: cmd.ErrOrStderr(), Skip: p.skipHooks}
	if !strings.HasPrefix(cfg.HooksPath, "/") {
		pr.hooks.Dir = dir + "/" + cfg.HooksPath
	}
	return pr, nil
}

// runHook runs a hook, giving it all secrets when Kamal would.
func (p *project) runHook(ctx context.Context, name, command string, hosts []string, extra map[string]string) error {
	if p.hooks.Skip {
		return nil
	}
	if _, err := os.Stat(p.hooks.Dir + "/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	all, err := p.secrets.All()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	p.hooks.Secrets = all
	tags := hooks.Tags{
		RecordedAt: time.Now(), Performer: performer(), Destination: p.cfg.Destination, Version: p.cfg.Version,
		Service: p.cfg.Service, Hosts: hosts, Roles: p.flags.roles, Command: command, Lock: name == hooks.PreDeploy,
	}
	return p.hooks.Run(ctx, name, tags, extra)
}

// performer is Kamal's KAMAL_PERFORMER: git user.email, else whoami.
func performer() string {
	if out, err := exec.Command("git", "config", "user.email").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		return strings.TrimSpace(string(out))
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// allHosts returns the selected app hosts (for KAMAL_HOSTS).
func (p *project) allHosts() []string {
	sel, err := selectedHosts(p.cfg, p.selection())
	if err != nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, r := range p.cfg.Roles {
		for _, h := range sel[r.Name] {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	return out
}

func (p *project) selection() selection {
	return selection{Roles: p.flags.roles, Hosts: p.flags.hosts, Primary: p.flags.primary}
}

// describeErr prefixes config errors the way Kamal prints them.
func describeErr(err error) error {
	var ce *kamalconfig.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("configuration: %w", err)
	}
	return err
}
