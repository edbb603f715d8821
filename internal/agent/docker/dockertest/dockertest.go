// Package dockertest holds helpers for tests that need the real Docker
// engine: a client, locally built FROM-scratch images of the test app
// (test/app) and the kamal-proxy stand-in (test/kamal-proxy), a real
// registry from Debian's docker-registry with htpasswd auth, free ports and
// per-test names. Everything a helper creates is removed in t.Cleanup.
//
// With KCTL_E2E=1 a missing engine or registry fails the test; otherwise it
// skips.
package dockertest

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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"golang.org/x/crypto/bcrypt"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// E2E reports whether end-to-end prerequisites are mandatory (KCTL_E2E=1).
func E2E() bool { return testenv.Strict() }

// Require fails (KCTL_E2E=1) or skips the test with the reason.
func Require(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

// Client returns an Engine API client, failing or skipping when the engine
// is unreachable.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		Require(t, "docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		Require(t, "docker engine unreachable: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Prefix returns a short unique lowercase name prefix for the test's Docker
// objects ("kt" + 6 hex).
func Prefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "kt" + hex.EncodeToString(b)
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("FreePort: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// ModuleRoot returns the directory of the kctl go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			rootErr = err
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			rootErr = errors.New("not inside the kctl module")
			return
		}
		rootDir = filepath.Dir(gomod)
	})
	if rootErr != nil {
		t.Fatalf("ModuleRoot: %v", rootErr)
	}
	return rootDir
}

// BuildBinary builds a static binary of the package (relative to the module
// root, e.g. "./test/app") with CGO_ENABLED=0 and returns its path.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
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
type Registry struct {
	Addr     string // 127.0.0.1:<port>
	User     string
	Password string
}

// Auth returns the base64 JSON X-Registry-Auth for the registry.
func (r Registry) Auth() string {
	b, _ := json.Marshal(registry.AuthConfig{Username: r.User, Password: r.Password, ServerAddress: r.Addr})
	return base64.URLEncoding.EncodeToString(b)
}

// StartRegistry starts Debian's docker-registry on 127.0.0.1:<free port>
// with htpasswd (bcrypt) auth and storage in t.TempDir, and stops it in
// cleanup. Docker treats 127.0.0.0/8 registries as insecure-allowed.
func StartRegistry(t testing.TB) Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		Require(t, "docker-registry not installed (apt-get install docker-registry): %v", err)
	}
	dir := t.TempDir()
	reg := Registry{Addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), User: "kctl", Password: hex.EncodeToString(randBytes(12))}
	hash, err := bcrypt.GenerateFromPassword([]byte(reg.Password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(reg.User+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s/data
  delete:
    enabled: true
http:
  addr: %s
  secret: %s
auth:
  htpasswd:
    realm: kctl-test
    path: %s/htpasswd
`, dir, reg.Addr, hex.EncodeToString(randBytes(16)), dir)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		Require(t, "start docker-registry: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + reg.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusOK {
				return reg
			}
		}
		select {
		case <-done:
			Require(t, "docker-registry exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			Require(t, "docker-registry not answering on %s: %v\n%s", reg.Addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
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

// WaitFor polls cond every 20ms until it returns nil or the timeout passes,
// then fails with the last error.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
