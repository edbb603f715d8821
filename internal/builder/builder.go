// Package builder builds and pushes an app's image on the operator's
// machine, as `kamal build push` does: from a git archive of HEAD (Kamal
// builds from a clean clone) unless builder.context names a directory, tagged
// `<repo>:<version>` and `<repo>:latest[-dest]`, labelled
// `service=<service>`, then pushed to the registry.
//
// It talks to the Docker Engine API, so it needs only a Docker engine: no
// buildx, no docker CLI.
package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// ErrBuild is wrapped by every build or push failure.
var ErrBuild = errors.New("builder: build failed")

// Options describe one build.
type Options struct {
	// Dir is the project directory (the one holding config/).
	Dir string
	// Context, when set, is the build context relative to Dir (Kamal's
	// builder.context); otherwise the context is git HEAD of Dir's repo.
	Context string
	// Dockerfile is relative to the context; default "Dockerfile".
	Dockerfile string
	Target     string
	Args       map[string]string
	Service    string
	// Repository is the image without a tag; Tags are appended to it.
	Repository string
	Tags       []string
	NoCache    bool
	// Secrets are builder.secrets names; the Engine API builder cannot pass
	// build secrets, so a non-empty list is refused with a hint.
	Secrets []string
	// Progress receives the build's output lines.
	Progress io.Writer
}

// Build builds the image and returns the full references it tagged.
func Build(ctx context.Context, cli client.APIClient, opts Options) ([]string, error) {
	if len(opts.Secrets) > 0 {
		return nil, fmt.Errorf("%w: builder.secrets (%s) need BuildKit's buildx, which this docker engine lacks; install docker-buildx or build with `docker buildx build` and deploy with --skip-push",
			ErrBuild, strings.Join(opts.Secrets, ", "))
	}
	dockerfile := opts.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	var buildCtx io.Reader
	if opts.Context != "" {
		dir := filepath.Join(opts.Dir, opts.Context)
		if _, err := os.Stat(filepath.Join(dir, dockerfile)); err != nil {
			return nil, fmt.Errorf("%w: missing Dockerfile %s in builder context %s", ErrBuild, dockerfile, dir)
		}
		tarball, err := tarDir(dir)
		if err != nil {
			return nil, fmt.Errorf("%w: read context: %v", ErrBuild, err)
		}
		buildCtx = tarball
	} else {
		tarball, err := gitArchive(ctx, opts.Dir)
		if err != nil {
			return nil, err
		}
		buildCtx = tarball
	}
	var refs []string
	for _, t := range opts.Tags {
		refs = append(refs, opts.Repository+":"+t)
	}
	args := map[string]*string{}
	for k, v := range opts.Args {
		args[k] = &v
	}
	resp, err := cli.ImageBuild(ctx, buildCtx, build.ImageBuildOptions{
		Tags:        refs,
		Dockerfile:  dockerfile,
		Target:      opts.Target,
		BuildArgs:   args,
		Labels:      map[string]string{"service": opts.Service},
		NoCache:     opts.NoCache,
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBuild, err)
	}
	defer resp.Body.Close()
	if err := streamMessages(resp.Body, opts.Progress); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBuild, err)
	}
	return refs, nil
}

// Auth is a registry login. Password is a secret and is never printed.
type Auth struct {
	Server, Username, Password string
}

// Push pushes refs to their registry.
func Push(ctx context.Context, cli client.APIClient, refs []string, auth Auth, progress io.Writer) error {
	enc, err := EncodeAuth(auth)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: enc})
		if err != nil {
			return fmt.Errorf("builder: push %s: %w", ref, err)
		}
		err = streamMessages(rc, progress)
		rc.Close()
		if err != nil {
			return fmt.Errorf("builder: push %s: %w", ref, err)
		}
	}
	return nil
}

// EncodeAuth encodes a registry login for the Engine API's X-Registry-Auth.
func EncodeAuth(a Auth) (string, error) {
	b, err := json.Marshal(registry.AuthConfig{Username: a.Username, Password: a.Password, ServerAddress: a.Server})
	if err != nil {
		return "", fmt.Errorf("builder: encode auth: %w", err)
	}
	return base64.URLEncoding.EncodeToString(b), nil
}

// streamMessages copies the engine's JSON progress to w as plain lines and
// returns the first error message the engine reports.
func streamMessages(r io.Reader, w io.Writer) error {
	if w == nil {
		w = io.Discard
	}
	dec := json.NewDecoder(r)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != nil {
			return errors.New(strings.TrimSpace(m.Error.Message))
		}
		switch {
		case m.Stream != "":
			io.WriteString(w, m.Stream)
		case m.Status != "" && m.Progress == nil:
			fmt.Fprintf(w, "%s %s\n", m.ID, m.Status)
		}
	}
}

// gitArchive returns a tar of HEAD of the repository holding dir, with dir's
// path inside the repository as the context root.
func gitArchive(ctx context.Context, dir string) (io.Reader, error) {
	prefix, err := git(ctx, dir, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, fmt.Errorf("%w: the build context is git HEAD, but %s is not in a git repository (set builder.context to build a directory): %v", ErrBuild, dir, err)
	}
	treeish := "HEAD"
	if p := strings.TrimSpace(prefix); p != "" {
		treeish = "HEAD:" + strings.TrimSuffix(p, "/")
	}
	cmd := exec.CommandContext(ctx, "git", "archive", "--format=tar", treeish)
	cmd.Dir = dir
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: git archive %s: %s", ErrBuild, treeish, strings.TrimSpace(stderr.String()))
	}
	return &out, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", errors.New(msg)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Version returns Kamal's default version for the project in dir: the git
// HEAD SHA, with `_uncommitted_<16 hex>` appended when the tree is dirty and
// the build uses the git context (buildFromDir false).
func Version(ctx context.Context, dir string, buildFromDir bool) (string, error) {
	sha, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return "", fmt.Errorf("builder: no version: %s is not a git repository with a commit (pass --version): %v", dir, err)
	}
	if buildFromDir {
		return sha, nil
	}
	status, err := git(ctx, dir, "status", "--porcelain")
	if err != nil {
		return "", fmt.Errorf("builder: git status: %w", err)
	}
	if status != "" {
		var b [8]byte
		rand.Read(b[:])
		sha += "_uncommitted_" + hex.EncodeToString(b[:])
	}
	return sha, nil
}

// tarDir tars a directory tree as a build context, honouring no
// .dockerignore (kept simple: contexts are small project trees).
func tarDir(dir string) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() && rel == ".git" {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}
