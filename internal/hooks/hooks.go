// Package hooks runs Kamal's hooks on the operator's machine: executables in
// the hooks path (`.kamal/hooks` by default) named for the moment they run
// at, with Kamal's KAMAL_* variables (shared/reference/kamal.md §5). A hook
// that is absent is skipped; one that exits non-zero aborts the command.
package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrHookFailed is wrapped by the error of a hook that exited non-zero.
var ErrHookFailed = errors.New("hooks: hook failed")

// Names of the hooks, in the order a deploy runs them.
const (
	PreConnect      = "pre-connect"
	PreBuild        = "pre-build"
	PreDeploy       = "pre-deploy"
	PreAppBoot      = "pre-app-boot"
	PostAppBoot     = "post-app-boot"
	PostDeploy      = "post-deploy"
	PreProxyReboot  = "pre-proxy-reboot"
	PostProxyReboot = "post-proxy-reboot"
	DockerSetup     = "docker-setup"
)

// withSecrets lists the hooks Kamal gives every secret as an env var.
var withSecrets = map[string]bool{PreConnect: true, PreDeploy: true, PostDeploy: true}

// Tags are the base variables of every hook (Kamal's lib/kamal/tags.rb).
type Tags struct {
	RecordedAt  time.Time
	Performer   string
	Destination string
	Version     string
	Service     string
	Hosts       []string
	Roles       []string
	Lock        bool
	Command     string
	Subcommand  string
}

// Env renders the tags as KAMAL_* variables, dropping empty ones.
func (t Tags) Env() []string {
	var env []string
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	recorded := t.RecordedAt
	if recorded.IsZero() {
		recorded = time.Now()
	}
	add("KAMAL_RECORDED_AT", recorded.UTC().Format(time.RFC3339))
	add("KAMAL_PERFORMER", t.Performer)
	add("KAMAL_DESTINATION", t.Destination)
	add("KAMAL_VERSION", t.Version)
	if t.Service != "" && t.Version != "" {
		add("KAMAL_SERVICE_VERSION", t.Service+"@"+t.Version[:min(7, len(t.Version))])
	}
	add("KAMAL_SERVICE", t.Service)
	add("KAMAL_HOSTS", strings.Join(t.Hosts, ","))
	add("KAMAL_ROLES", strings.Join(t.Roles, ","))
	add("KAMAL_LOCK", fmt.Sprint(t.Lock))
	add("KAMAL_COMMAND", t.Command)
	add("KAMAL_SUBCOMMAND", t.Subcommand)
	return env
}

// Runner runs the hooks of one project.
type Runner struct {
	// Dir is the hooks path, e.g. `<project>/.kamal/hooks`.
	Dir string
	// WorkDir is where hooks run (the project directory).
	WorkDir string
	// Secrets are passed to the hooks Kamal passes them to.
	Secrets map[string]string
	// Output receives the hooks' combined output; nil discards it.
	Output io.Writer
	// Skip disables every hook (-H/--skip-hooks).
	Skip bool
}

// Run runs hook name with the tags and extra variables (KAMAL_HOSTS of a boot
// group, KAMAL_RUNTIME). It returns nil when the hook does not exist.
func (r *Runner) Run(ctx context.Context, name string, tags Tags, extra map[string]string) error {
	if r == nil || r.Skip {
		return nil
	}
	path := filepath.Join(r.Dir, name)
	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hooks: %s: %w", name, err)
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return fmt.Errorf("%w: hook `%s` at %s is not executable (chmod +x it, or rename it to %s.sample)", ErrHookFailed, name, path, name)
	}
	env := os.Environ()
	if withSecrets[name] {
		keys := make([]string, 0, len(r.Secrets))
		for k := range r.Secrets {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, k+"="+r.Secrets[k])
		}
	}
	env = append(env, tags.Env()...)
	extraKeys := make([]string, 0, len(extra))
	for k := range extra {
		extraKeys = append(extraKeys, k)
	}
	sort.Strings(extraKeys)
	for _, k := range extraKeys {
		env = append(env, k+"="+extra[k])
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Dir = r.WorkDir
	cmd.Env = env
	var out bytes.Buffer
	if r.Output != nil {
		cmd.Stdout = io.MultiWriter(&out, r.Output)
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: Hook `%s` failed:\n%s", ErrHookFailed, name, strings.TrimSpace(out.String()))
	}
	return nil
}
