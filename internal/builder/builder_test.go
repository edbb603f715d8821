package builder_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/kctl-dev/kctl/internal/builder"
	"github.com/kctl-dev/kctl/internal/testenv"
)

func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	testenv.Command(t, "git")
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q"}, {"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func TestVersion(t *testing.T) {
	dir := gitRepo(t, map[string]string{"a.txt": "a"})
	ctx := context.Background()
	clean, err := builder.Version(ctx, dir, false)
	if err != nil || len(clean) != 40 {
		t.Fatalf("Version(clean) = %q, %v; want a 40-char SHA", clean, err)
	}
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("changed"), 0o644)
	dirty, err := builder.Version(ctx, dir, false)
	if err != nil || !strings.HasPrefix(dirty, clean+"_uncommitted_") || len(dirty) != 40+len("_uncommitted_")+16 {
		t.Fatalf("Version(dirty) = %q, %v; want %s_uncommitted_<16 hex>", dirty, err, clean)
	}
	if got, _ := builder.Version(ctx, dir, true); got != clean {
		t.Errorf("Version(dirty, build from dir) = %q, want %q", got, clean)
	}
	if _, err := builder.Version(ctx, t.TempDir(), false); err == nil {
		t.Errorf("Version(not a repo) succeeded, want an error")
	}
}

func TestBuild_FromGitHead(t *testing.T) {
	cli := testenv.Docker(t)
	dir := gitRepo(t, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"hello.txt":  "committed",
	})
	// An uncommitted change must not reach the image: the context is HEAD.
	os.WriteFile(filepath.Join(dir, "untracked.txt"), []byte("x"), 0o644)

	var b [4]byte
	rand.Read(b[:])
	repo := "kctl-test/builder-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	var progress bytes.Buffer
	refs, err := builder.Build(ctx, cli, builder.Options{
		Dir: dir, Service: "app", Repository: repo, Tags: []string{"v1", "latest"}, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, progress.String())
	}
	t.Cleanup(func() {
		for _, r := range refs {
			cli.ImageRemove(context.Background(), r, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	})
	for _, ref := range []string{repo + ":v1", repo + ":latest"} {
		ins, err := cli.ImageInspect(ctx, ref)
		if err != nil {
			t.Fatalf("ImageInspect(%s): %v", ref, err)
		}
		if got := ins.Config.Labels["service"]; got != "app" {
			t.Errorf("%s label service = %q, want app", ref, got)
		}
	}
}

func TestBuild_MissingDockerfileInContext(t *testing.T) {
	cli := testenv.Docker(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ctx"), 0o755)
	_, err := builder.Build(context.Background(), cli, builder.Options{Dir: dir, Context: "ctx", Repository: "x", Tags: []string{"v"}})
	if err == nil || !strings.Contains(err.Error(), "missing Dockerfile") {
		t.Fatalf("Build(no Dockerfile) error = %v, want missing Dockerfile", err)
	}
}

func TestBuild_SecretsNeedBuildx(t *testing.T) {
	_, err := builder.Build(context.Background(), nil, builder.Options{Secrets: []string{"GITHUB_TOKEN"}})
	if err == nil || !strings.Contains(err.Error(), "buildx") {
		t.Fatalf("Build(secrets) error = %v, want a buildx hint", err)
	}
}
