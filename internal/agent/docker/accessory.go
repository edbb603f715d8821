package docker

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

func cloneContainer(c *specv1.Container) *specv1.Container {
	if c == nil {
		return &specv1.Container{}
	}
	return proto.Clone(c).(*specv1.Container)
}

// BootAccessory is `kamal accessory boot`: skipped when the container
// exists; otherwise directories, files, env file, run, and a kamal-proxy
// deploy when the accessory has a proxy.
func (r *Runtime) BootAccessory(ctx context.Context, b *agentv1.BootAccessory) (*agentv1.Result, error) {
	c := b.GetContainer()
	s, err := r.Translate(c)
	if err != nil {
		return failed(ctx, err)
	}
	existing, err := r.findSpec(ctx, s.Name)
	if err != nil {
		return failed(ctx, err)
	}
	var id string
	if existing != nil {
		id = existing.ID
		if existing.State != "running" && existing.Labels[LabelSpec] == s.Config.Labels[LabelSpec] {
			// Interrupted boot of ours: finish it.
			if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
				return failed(ctx, fmt.Errorf("start %s: %w", s.Name, err))
			}
		}
	} else {
		for _, d := range c.GetDirectories() {
			if err := os.MkdirAll(r.accessoryPath(d), 0o755); err != nil {
				return failed(ctx, fmt.Errorf("directory %s: %w", d, err))
			}
		}
		for _, f := range c.GetFiles() {
			mode := os.FileMode(f.GetMode())
			if mode == 0 {
				mode = 0o755 // Kamal's default for accessory files
			}
			if err := writeDataFile(r.accessoryPath(f.GetPath()), f.GetContent(), mode); err != nil {
				return failed(ctx, fmt.Errorf("file %s: %w", f.GetPath(), err))
			}
			if f.GetOwner() != "" {
				if err := chown(r.accessoryPath(f.GetPath()), f.GetOwner()); err != nil {
					return failed(ctx, fmt.Errorf("file %s: owner %s: %w", f.GetPath(), f.GetOwner(), err))
				}
			}
		}
		if err := r.writeEnvFile(c); err != nil {
			return failed(ctx, fmt.Errorf("env file: %w", err))
		}
		if c.GetNetwork() != "" {
			if err := r.EnsureNetwork(ctx, c.GetNetwork()); err != nil {
				return failed(ctx, err)
			}
		}
		if _, err := r.cli.ImageInspect(ctx, c.GetImage()); err != nil {
			if err := r.pull(ctx, c.GetImage(), b.GetAuth()); err != nil {
				return failed(ctx, err)
			}
		}
		if id, err = r.create(ctx, s); err != nil {
			return failed(ctx, err)
		}
		if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true})
			return failed(ctx, fmt.Errorf("start %s: %w", s.Name, err))
		}
	}
	if p := b.GetProxy(); p != nil {
		port := p.GetAppPort()
		if port == 0 {
			port = 80
		}
		if err := r.proxy.Deploy(ctx, p.GetService(), fmt.Sprintf("%s:%d", id[:12], port), p.GetFlags()); err != nil {
			return failed(ctx, err)
		}
	}
	return &agentv1.Result{Ok: true, ContainerId: id}, nil
}

// accessoryPath maps an accessory file/directory path (relative to the SSH
// home in Kamal) into the data dir; absolute paths stay as they are.
func (r *Runtime) accessoryPath(p string) string {
	p = r.hostPath(p)
	if filepath.IsAbs(p) && !strings.HasPrefix(p, "$") {
		return p
	}
	return filepath.Join(r.cfg.DataDir, p)
}

// AccessoryControl starts, stops, restarts or removes an accessory
// container (by its service name).
func (r *Runtime) AccessoryControl(ctx context.Context, a *agentv1.AccessoryControl) error {
	c, err := r.findSpec(ctx, a.GetName())
	if err != nil {
		return err
	}
	if c == nil {
		switch a.GetAction() {
		case agentv1.AccessoryControl_ACTION_REMOVE, agentv1.AccessoryControl_ACTION_REMOVE_CONTAINER, agentv1.AccessoryControl_ACTION_STOP:
			return nil
		}
		return fmt.Errorf("%w: %s", ErrNoContainer, a.GetName())
	}
	switch a.GetAction() {
	case agentv1.AccessoryControl_ACTION_START:
		return r.cli.ContainerStart(ctx, c.ID, container.StartOptions{})
	case agentv1.AccessoryControl_ACTION_STOP:
		return r.stopContainer(ctx, c.ID, nil)
	case agentv1.AccessoryControl_ACTION_RESTART:
		if err := r.stopContainer(ctx, c.ID, nil); err != nil {
			return err
		}
		return r.cli.ContainerStart(ctx, c.ID, container.StartOptions{})
	case agentv1.AccessoryControl_ACTION_REMOVE, agentv1.AccessoryControl_ACTION_REMOVE_CONTAINER:
		if err := r.stopContainer(ctx, c.ID, nil); err != nil {
			return err
		}
		if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err != nil && !isNotFound(err) {
			return err
		}
		if a.GetAction() == agentv1.AccessoryControl_ACTION_REMOVE_CONTAINER {
			return nil
		}
		// Kamal: `docker image rm --force <image>` and `rm -rf <service_name>`.
		if _, err := r.cli.ImageRemove(ctx, c.Image, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !isNotFound(err) {
			r.cfg.Logf("accessory %s: image rm %s: %v", a.GetName(), c.Image, err)
		}
		return os.RemoveAll(filepath.Join(r.cfg.DataDir, filepath.Clean("/"+a.GetName())))
	}
	return fmt.Errorf("%w: accessory action %v", ErrBadOperation, a.GetAction())
}

// chown applies Kamal's file `owner` ("user", "user:group", numeric ids).
func chown(path, owner string) error {
	u, g, _ := strings.Cut(owner, ":")
	uid, gid := -1, -1
	if u != "" {
		n, err := strconv.Atoi(u)
		if err != nil {
			usr, lerr := user.Lookup(u)
			if lerr != nil {
				return lerr
			}
			n, _ = strconv.Atoi(usr.Uid)
		}
		uid = n
	}
	if g != "" {
		n, err := strconv.Atoi(g)
		if err != nil {
			grp, lerr := user.LookupGroup(g)
			if lerr != nil {
				return lerr
			}
			n, _ = strconv.Atoi(grp.Gid)
		}
		gid = n
	}
	return os.Chown(path, uid, gid)
}
