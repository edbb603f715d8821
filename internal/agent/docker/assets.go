package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/container"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

// assetDirs returns the extracted and volume directories of a version
// (`.kamal/apps/<svc>/assets/{extracted,volumes}/<role>-<version>`).
func (r *Runtime) assetDirs(c *specv1.Container, version string) (extracted, volume string) {
	svc := c.GetService()
	if c.GetDestination() != "" {
		svc += "-" + c.GetDestination()
	}
	base := filepath.Join(r.cfg.DataDir, ".kamal", "apps", svc, "assets")
	leaf := c.GetRole() + "-" + version
	return filepath.Join(base, "extracted", leaf), filepath.Join(base, "volumes", leaf)
}

// prepareAssets is Kamal's asset step (`app/assets.rb`): extract asset_path
// from the new image through a created (never started) `<prefix>-assets`
// container, copy it into the new asset volume, and cross-copy with the old
// version without overwriting (`cp -rnT`), so both versions serve both sets
// during the switch.
func (r *Runtime) prepareAssets(ctx context.Context, c *specv1.Container, oldVersion string) error {
	extracted, volume := r.assetDirs(c, c.GetVersion())
	if err := os.RemoveAll(extracted); err != nil {
		return err
	}
	if err := os.MkdirAll(extracted, 0o755); err != nil {
		return err
	}
	name := prefix(c.GetService(), c.GetRole(), c.GetDestination()) + "-assets"
	if old, err := r.findSpec(ctx, name); err == nil && old != nil {
		_ = r.cli.ContainerRemove(ctx, old.ID, container.RemoveOptions{Force: true})
	}
	cfg := &container.Config{Image: c.GetImage(), Labels: map[string]string{}}
	if r.cfg.AgentName != "" {
		cfg.Labels[LabelAgent] = r.cfg.AgentName
	}
	created, err := r.cli.ContainerCreate(ctx, cfg, &container.HostConfig{}, nil, nil, r.engineName(name))
	if err != nil {
		return fmt.Errorf("assets container: %w", err)
	}
	defer func() {
		_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
	}()
	rc, _, err := r.cli.CopyFromContainer(ctx, created.ID, strings.TrimSuffix(c.GetAssetPath(), "/")+"/.")
	if err != nil {
		return fmt.Errorf("copy %s from %s: %w", c.GetAssetPath(), c.GetImage(), err)
	}
	defer rc.Close()
	if err := untar(rc, extracted); err != nil {
		return fmt.Errorf("extract assets: %w", err)
	}
	if err := copyNoClobber(extracted, volume); err != nil {
		return err
	}
	if oldVersion != "" && oldVersion != c.GetVersion() {
		oldExtracted, oldVolume := r.assetDirs(c, oldVersion)
		// continue_on_error in Kamal: the old dirs may be gone.
		_ = copyNoClobber(extracted, oldVolume)
		_ = copyNoClobber(oldExtracted, volume)
	}
	return nil
}

// cleanAssets removes the other versions' asset dirs of the role (Kamal's
// find_and_remove_older_siblings) after a successful boot.
func (r *Runtime) cleanAssets(c *specv1.Container) {
	extracted, volume := r.assetDirs(c, c.GetVersion())
	for _, dir := range []string{extracted, volume} {
		siblings, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), c.GetRole()+"-*"))
		for _, s := range siblings {
			if s != dir {
				_ = os.RemoveAll(s)
			}
		}
	}
}

// untar extracts a docker cp tar stream into dir. The stream's top entry is
// "./" (the copied directory itself).
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// Entries are "<root>/…" where root is the copied directory's own
		// name ("." when copying "<path>/.").
		name := strings.TrimPrefix(filepath.ToSlash(h.Name), "./")
		if i := strings.IndexByte(name, '/'); i >= 0 && !strings.HasPrefix(h.Name, "./") {
			name = name[i+1:]
		}
		if name == "" || name == "." {
			continue
		}
		dst := filepath.Join(dir, filepath.Clean("/"+name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, os.FileMode(h.Mode).Perm()|0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(dst)
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		}
	}
}

// copyNoClobber is `cp -rnT src dst`: copy the tree, never overwriting.
func copyNoClobber(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&os.ModeSymlink != 0:
			if _, err := os.Lstat(target); err == nil {
				return nil
			}
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			if _, err := os.Lstat(target); err == nil {
				return nil
			}
			in, err := os.Open(path)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
	})
}
