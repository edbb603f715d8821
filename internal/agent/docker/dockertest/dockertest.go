// Package dockertest holds the Docker half of the test kit
// (internal/testenv): locally built FROM-scratch images of the test app
// (test/app) and the kamal-proxy stand-in (test/kamal-proxy), pushes to a
// testenv.Registry, per-test names, and removal of the containers, networks
// and volumes a test names. Everything a helper creates is removed in
// t.Cleanup.
//
// With KCTL_E2E=1 a missing engine or registry fails the test; otherwise it
// skips.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// Client returns an Engine API client, failing or skipping when the engine
// is unreachable (testenv.Docker).
func Client(t testing.TB) *client.Client {
	t.Helper()
	return testenv.Docker(t)
}

// E2E reports whether end-to-end prerequisites are mandatory (KCTL_E2E=1).
func E2E() bool { return testenv.Strict() }

// Require fails (KCTL_E2E=1) or skips the test with the reason.
func Require(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

// Prefix returns a short unique lowercase name prefix for the test's Docker
// objects ("kt" + 6 hex).
func Prefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "kt" + hex.EncodeToString(b)
}

// FreePort is testenv.FreePort.
func FreePort(t testing.TB) int {
	t.Helper()
	return testenv.FreePort(t)
}

// WaitFor is testenv.WaitFor.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testenv.WaitFor(t, timeout, cond)
}

// BuildBinary is testenv.BuildBinary: a static binary of the package
// (relative to the module root, e.g. "./test/app"), built once per source
// tree and shared (do not change it).
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	return testenv.BuildBinary(t, pkg)
}

// BuildImage builds a FROM-scratch image holding the binary at /<dst> with
// the given Dockerfile lines after COPY, tags it and removes it in cleanup.
func BuildImage(t testing.TB, cli *client.Client, tag, binary, dst string, extra []string, labels map[string]string) {
	t.Helper()
	BuildImageFiles(t, cli, tag, binary, dst, extra, labels, nil)
}

// BuildImageFiles is BuildImage plus extra files copied into the image at
// their absolute paths (e.g. assets for asset_path tests).
func BuildImageFiles(t testing.TB, cli *client.Client, tag, binary, dst string, extra []string, labels map[string]string, files map[string]string) {
	t.Helper()
	bin, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	df := "FROM scratch\nCOPY " + filepath.Base(dst) + " " + dst + "\n"
	type entry struct {
		name string
		data []byte
		mode int64
	}
	entries := []entry{{filepath.Base(dst), bin, 0o755}}
	if len(files) > 0 {
		df += "COPY files/ /\n"
		for p, content := range files {
			entries = append(entries, entry{"files/" + strings.TrimPrefix(p, "/"), []byte(content), 0o644})
		}
	}
	df += strings.Join(extra, "\n") + "\n"
	entries = append(entries, entry{"Dockerfile", []byte(df), 0o644})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{tag}, Labels: labels, Remove: true, ForceRemove: true, NoCache: true})
	if err != nil {
		t.Fatalf("ImageBuild %s: %v", tag, err)
	}
	defer resp.Body.Close()
	if err := jsonStreamErr(resp.Body); err != nil {
		t.Fatalf("ImageBuild %s: %v", tag, err)
	}
	t.Cleanup(func() { RemoveImage(cli, tag) })
}

// RemoveImage removes an image reference and the containers made from it
// (the image is the test's own), ignoring errors, so no dangling image is
// left behind.
func RemoveImage(cli *client.Client, ref string) {
	ctx := context.Background()
	if list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("ancestor", ref))}); err == nil {
		ii, ierr := cli.ImageInspect(ctx, ref)
		for _, c := range list {
			// ancestor also matches images built on top; only remove
			// containers of exactly this image.
			if ierr == nil && c.ImageID == ii.ID {
				_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
	}
	_, _ = cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
}

// RemoveImages removes every tag of the repository, ignoring errors.
func RemoveImages(cli *client.Client, repo string) {
	list, err := cli.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", repo))})
	if err != nil {
		return
	}
	for _, im := range list {
		for _, tag := range im.RepoTags {
			RemoveImage(cli, tag)
		}
	}
}

func jsonStreamErr(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// BuildAppImage builds the test app (test/app) as tag, with labels (Kamal
// images carry `service=<name>`), and removes it in cleanup.
func BuildAppImage(t testing.TB, cli *client.Client, tag string, labels map[string]string) {
	t.Helper()
	BuildAppImageFiles(t, cli, tag, labels, nil)
}

// BuildAppImageFiles is BuildAppImage with extra files in the image.
func BuildAppImageFiles(t testing.TB, cli *client.Client, tag string, labels map[string]string, files map[string]string) {
	t.Helper()
	bin := BuildBinary(t, "./test/app")
	BuildImageFiles(t, cli, tag, bin, "/app", []string{"EXPOSE 80", `ENTRYPOINT ["/app"]`}, labels, files)
}

// ProxyRepository and ProxyVersion are the stand-in's image name parts for
// tests: use them as proxy.run repository/version.
const ProxyVersion = "v0.9.2"

// BuildProxyImage builds the kamal-proxy stand-in as `<repo>:v0.9.2`
// (labelled org.opencontainers.image.title=kamal-proxy) and returns the
// image reference.
func BuildProxyImage(t testing.TB, cli *client.Client, repo string) string {
	t.Helper()
	bin := BuildBinary(t, "./test/kamal-proxy")
	ref := repo + ":" + ProxyVersion
	BuildImage(t, cli, ref, bin, "/usr/local/bin/kamal-proxy",
		[]string{"ENV HOME=/home/kamal-proxy PATH=/usr/local/bin", "EXPOSE 80 443", `CMD ["kamal-proxy", "run"]`},
		map[string]string{"org.opencontainers.image.title": "kamal-proxy"})
	return ref
}

// Registry is a running docker-registry with htpasswd auth.
type Registry = testenv.Registry

// StartRegistry is testenv.StartRegistry.
func StartRegistry(t testing.TB) Registry {
	t.Helper()
	return testenv.StartRegistry(t)
}

// Push tags src as <registry>/<repo>:<tag> (the given target ref), pushes
// it with the registry's credentials and removes the local target tag in
// cleanup.
func Push(t testing.TB, cli *client.Client, reg Registry, src, target string) {
	t.Helper()
	ctx := context.Background()
	if err := cli.ImageTag(ctx, src, target); err != nil {
		t.Fatalf("ImageTag %s %s: %v", src, target, err)
	}
	t.Cleanup(func() { RemoveImage(cli, target) })
	rc, err := cli.ImagePush(ctx, target, image.PushOptions{RegistryAuth: reg.Auth()})
	if err != nil {
		t.Fatalf("ImagePush %s: %v", target, err)
	}
	defer rc.Close()
	if err := jsonStreamErr(rc); err != nil {
		t.Fatalf("ImagePush %s: %v", target, err)
	}
}

// CleanupContainers removes, at the end of the test, every container whose
// name starts with prefix or that carries label (key=value), and the named
// networks and volumes.
func CleanupContainers(t testing.TB, cli *client.Client, namePrefix string, networks, volumes []string) {
	t.Helper()
	t.Cleanup(func() {
		ctx := context.Background()
		list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", namePrefix))})
		for _, c := range list {
			for _, n := range c.Names {
				if strings.HasPrefix(strings.TrimPrefix(n, "/"), namePrefix) {
					_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
					break
				}
			}
		}
		for _, n := range networks {
			_ = cli.NetworkRemove(ctx, n)
		}
		for _, v := range volumes {
			_ = cli.VolumeRemove(ctx, v, true)
		}
	})
}

// EnsureNetwork creates a network for the test and removes it in cleanup.
func EnsureNetwork(t testing.TB, cli *client.Client, name string) {
	t.Helper()
	if _, err := cli.NetworkCreate(context.Background(), name, network.CreateOptions{}); err != nil {
		t.Fatalf("NetworkCreate %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cli.NetworkRemove(context.Background(), name) })
}
