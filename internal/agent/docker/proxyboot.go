package docker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/proxy"
	"github.com/kctl-dev/kctl/internal/shellwords"
)

// AppsConfigDir is the proxy apps-config dir on the host (Kamal:
// `.kamal/proxy/apps-config`, mounted at /home/kamal-proxy/.apps-config).
func (r *Runtime) AppsConfigDir() string {
	return filepath.Join(r.cfg.DataDir, ".kamal", "proxy", "apps-config")
}

// proxySpec applies the runtime's proxy name/volume overrides.
func (r *Runtime) proxySpec(c *specv1.Container) *specv1.Container {
	c = cloneContainer(c)
	c.Name = r.cfg.ProxyName
	for i, v := range c.Volumes {
		if strings.HasPrefix(v, "kamal-proxy-config:") {
			c.Volumes[i] = r.cfg.ProxyVolume + strings.TrimPrefix(v, "kamal-proxy-config")
		}
	}
	return c
}

// BootProxy is `kamal proxy boot` (`docker container start kamal-proxy ||
// docker run …`, refusing a running proxy older than v0.9.2) or, with
// reboot, `kctl proxy reboot` (Kamal's `kamal proxy reboot`: stop, prune, run).
func (r *Runtime) BootProxy(ctx context.Context, b *agentv1.BootProxy) error {
	c := r.proxySpec(b.GetBoot().GetContainer())
	if b.GetBoot().GetLegacy() {
		var err error
		if c, err = r.legacyProxy(c); err != nil {
			return err
		}
	}
	s, err := r.Translate(c)
	if err != nil {
		return err
	}
	if err := r.EnsureNetwork(ctx, c.GetNetwork()); err != nil {
		return err
	}
	if err := os.MkdirAll(r.AppsConfigDir(), 0o755); err != nil {
		return err
	}
	existing, err := r.findByName(ctx, s.Name)
	if err != nil {
		return err
	}
	if b.GetReboot() && existing != nil {
		r.cfg.Logf("Rebooting proxy %s", s.Name)
		if err := r.stopContainer(ctx, existing.ID, nil); err != nil {
			return err
		}
		if err := r.cli.ContainerRemove(ctx, existing.ID, container.RemoveOptions{}); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove proxy: %w", err)
		}
		existing = nil
	}
	if existing != nil {
		in, err := r.cli.ContainerInspect(ctx, existing.ID)
		if err != nil {
			return err
		}
		if in.State.Running {
			if v := imageVersion(in.Config.Image); versionOlder(v, MinimumProxyVersion) {
				return fmt.Errorf("%w: kamal-proxy version %s is too old, run `kctl proxy reboot` in order to update to at least %s", ErrProxyTooOld, v, MinimumProxyVersion)
			}
			return nil
		}
		if err := r.cli.ContainerStart(ctx, existing.ID, container.StartOptions{}); err == nil {
			return nil
		} else {
			// `start || run`: a container that cannot start is replaced.
			r.cfg.Logf("proxy start failed (%v), running a new one", err)
			if err := r.cli.ContainerRemove(ctx, existing.ID, container.RemoveOptions{Force: true}); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	if _, err := r.cli.ImageInspect(ctx, c.GetImage()); err != nil {
		if err := r.pull(ctx, c.GetImage(), b.GetAuth()); err != nil {
			return err
		}
	}
	id, err := r.createNamed(ctx, s, s.Name) // the proxy keeps ProxyName
	if err != nil {
		return err
	}
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true})
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	return r.waitProxyReady(ctx)
}

// legacyProxy applies Kamal's deprecated boot_config files
// (`.kamal/proxy/{options,image,image_version,run_command}` under the data
// dir) as Kamal does when deploy.yml has no proxy.run:
// `$(cat options || echo "--publish 80:80 --publish 443:443 --log-opt
// max-size=10m") $(cat image || echo basecamp/kamal-proxy):$(cat
// image_version || echo v0.9.2) $(cat run_command || echo "")`.
// Files that are absent leave the spec (Kamal's defaults) as it is.
func (r *Runtime) legacyProxy(c *specv1.Container) (*specv1.Container, error) {
	dir := filepath.Join(r.cfg.DataDir, ".kamal", "proxy")
	read := func(name string) (string, bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			return "", false, nil
		}
		return strings.TrimSpace(string(b)), err == nil, err
	}
	if opts, ok, err := read("options"); err != nil {
		return nil, err
	} else if ok {
		words, err := shellwords.Split(opts)
		if err != nil {
			return nil, fmt.Errorf("proxy boot_config options: %w", err)
		}
		flags, _, _, err := ParseRunArgs(append(words, "IMAGE"))
		if err != nil {
			return nil, fmt.Errorf("proxy boot_config options: %w", err)
		}
		c.Publish, c.Logging, c.Expose, c.Options = nil, nil, nil, nil
		for _, f := range flags {
			c.Options = append(c.Options, &specv1.Option{Name: f.Name, Value: f.Value})
		}
	}
	repo, _, _ := cutTag(c.GetImage())
	version := imageVersion(c.GetImage())
	if img, ok, err := read("image"); err != nil {
		return nil, err
	} else if ok && img != "" {
		repo = img
	}
	if v, ok, err := read("image_version"); err != nil {
		return nil, err
	} else if ok && v != "" {
		version = v
	}
	c.Image = repo + ":" + version
	if rc, ok, err := read("run_command"); err != nil {
		return nil, err
	} else if ok {
		c.Args = nil
		if rc != "" {
			c.Args = []string{rc}
		}
	}
	return c, nil
}

// waitProxyReady polls until the kamal-proxy CLI answers inside the
// container (its RPC socket is up).
func (r *Runtime) waitProxyReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		_, err := r.proxy.List(ctx)
		if err == nil {
			return nil
		}
		last = err
		in, ierr := r.cli.ContainerInspect(ctx, r.cfg.ProxyName)
		if ierr == nil && !in.State.Running && in.State.Status != "created" {
			return fmt.Errorf("proxy exited: %s", strings.TrimSpace(r.lastLogs(ctx, in.ID, 10)))
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("proxy not answering: %w", last)
}

func imageVersion(ref string) string {
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i:], "/") {
		return ref[i+1:]
	}
	return "latest"
}

// versionOlder compares `vX.Y.Z` versions; unparsable ones are not older.
func versionOlder(v, min string) bool {
	pv, ok1 := parseVersion(v)
	pm, ok2 := parseVersion(min)
	if !ok1 || !ok2 {
		return false
	}
	for i := 0; i < 3; i++ {
		if pv[i] != pm[i] {
			return pv[i] < pm[i]
		}
	}
	return false
}

func parseVersion(v string) ([3]int, bool) {
	var out [3]int
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// ProxyControl runs one kamal-proxy command or proxy-container action.
func (r *Runtime) ProxyControl(ctx context.Context, p *agentv1.ProxyControl) (string, error) {
	switch p.GetAction() {
	case agentv1.ProxyControl_ACTION_REMOVE:
		return "", r.proxy.Remove(ctx, p.GetService())
	case agentv1.ProxyControl_ACTION_STOP:
		return "", r.proxy.Stop(ctx, p.GetService(), time.Duration(p.GetDrainTimeout())*time.Second, p.GetMessage())
	case agentv1.ProxyControl_ACTION_RESUME:
		return "", r.proxy.Resume(ctx, p.GetService())
	case agentv1.ProxyControl_ACTION_START:
		if err := r.cli.ContainerStart(ctx, r.cfg.ProxyName, container.StartOptions{}); err != nil {
			return "", err
		}
		return "", r.waitProxyReady(ctx)
	case agentv1.ProxyControl_ACTION_STOP_PROXY:
		return "", r.stopContainer(ctx, r.cfg.ProxyName, nil)
	case agentv1.ProxyControl_ACTION_REMOVE_PROXY:
		if err := r.stopContainer(ctx, r.cfg.ProxyName, nil); err != nil {
			return "", err
		}
		f := r.agentFilter(filters.NewArgs(filters.Arg("label", ProxyImageTitle), filters.Arg("name", engineNameFilter(r.cfg.ProxyName))))
		list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			return "", err
		}
		for _, c := range list {
			if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err != nil && !isNotFound(err) {
				return "", err
			}
		}
		return "", nil
	case agentv1.ProxyControl_ACTION_DETAILS:
		in, err := r.cli.ContainerInspect(ctx, r.cfg.ProxyName)
		if err != nil {
			return "", err
		}
		out := fmt.Sprintf("%s %s %s %s", in.ID[:12], in.Config.Image, in.State.Status, in.Name)
		if in.State.Running {
			if l, err := r.proxy.List(ctx); err == nil {
				out += "\n" + l
			}
		}
		return out, nil
	}
	return "", fmt.Errorf("%w: proxy action %v", ErrBadOperation, p.GetAction())
}

// writeProxyFiles writes apps-config files (error pages, TLS certificates).
func (r *Runtime) writeProxyFiles(files []*specv1.File) error {
	for _, f := range files {
		mode := os.FileMode(f.GetMode())
		if mode == 0 {
			mode = 0o644
		}
		path := filepath.Join(r.AppsConfigDir(), filepath.Clean("/"+f.GetPath()))
		if err := writeDataFile(path, f.GetContent(), mode); err != nil {
			return fmt.Errorf("apps-config file %s: %w", f.GetPath(), err)
		}
	}
	return nil
}

// ExecWait runs cmd in a running container (`docker exec`) and waits.
func (r *Runtime) ExecWait(ctx context.Context, ctr string, cmd []string) (proxy.ExecResult, error) {
	ex, err := r.cli.ContainerExecCreate(ctx, ctr, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return proxy.ExecResult{}, err
	}
	att, err := r.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return proxy.ExecResult{}, err
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); done <- err }()
	select {
	case err = <-done:
	case <-ctx.Done():
		att.Close()
		<-done
		return proxy.ExecResult{}, ctx.Err()
	}
	if err != nil {
		return proxy.ExecResult{}, err
	}
	in, err := r.cli.ContainerExecInspect(ctx, ex.ID)
	for i := 0; err == nil && in.Running && i < 100; i++ {
		// The stream can end a moment before the engine records the exit.
		if err = sleepCtx(ctx, 5*time.Millisecond); err == nil {
			in, err = r.cli.ContainerExecInspect(ctx, ex.ID)
		}
	}
	if err != nil {
		return proxy.ExecResult{}, err
	}
	return proxy.ExecResult{ExitCode: in.ExitCode, Stdout: stdout.String(), Stderr: stderr.String()}, nil
}
