package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/version"
)

// The daemons and the CLI, as Binaries builds them.
const (
	Controller = "controller"
	Agent      = "agent"
	Kctl       = "kctl"
)

// Binaries returns the directory holding the controller, agent and kctl
// binaries of this source tree (see Build).
func Binaries(t testing.TB) string {
	t.Helper()
	return Build(t, "./cmd/controller", "./cmd/agent", "./cmd/kctl")
}

// BuildBinary returns the path of the binary of one package of the module
// (e.g. "./test/app"), built by Build.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	return filepath.Join(Build(t, pkg), filepath.Base(pkg))
}

// Build builds the packages (paths relative to the module root) as static
// Linux binaries (CGO_ENABLED=0, -trimpath, stripped), stamped with
// TestVersion, and returns the directory that holds them. The binaries are
// shared: callers must not change them.
//
// A build is kept under os.TempDir()/kctl-test-bin, keyed by a hash of the
// module's sources, the packages, the flags and the Go version, so the
// packages of one `go test ./...` run (separate processes, possibly at the
// same time) build once: a file lock serializes builders and the finished
// directory appears by atomic rename. Builds unused for a day are removed.
func Build(t testing.TB, pkgs ...string) string {
	t.Helper()
	dir, err := build(pkgs)
	if err != nil {
		t.Fatalf("testenv.Build %s: %v", strings.Join(pkgs, " "), err)
	}
	return dir
}

var (
	builtMu sync.Mutex
	// built maps a build key to its directory, in this process.
	built = map[string]string{}
)

func build(pkgs []string) (string, error) {
	builtMu.Lock()
	defer builtMu.Unlock()
	src, err := sourceHash()
	if err != nil {
		return "", err
	}
	ver := TestVersion()
	ldflags := "-s -w " + version.LDFlag(ver)
	h := sha256.New()
	fmt.Fprintln(h, src, runtime.Version(), os.Getenv("GOFLAGS"), ldflags, strings.Join(pkgs, " "))
	key := hex.EncodeToString(h.Sum(nil))[:24]
	if dir, ok := built[key]; ok {
		return dir, nil
	}
	cache := filepath.Join(os.TempDir(), "kctl-test-bin")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(cache, key+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	dir := filepath.Join(cache, key)
	if _, err := os.Stat(dir); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // in use: keep it from pruning
		built[key] = dir
		return dir, nil
	}
	tmp, err := os.MkdirTemp(cache, key+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // left over only if the build failed
	args := append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", tmp + "/"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	prune(cache, 24*time.Hour)
	built[key] = dir
	return dir, nil
}

// lockFile takes an exclusive lock on path (created if needed) and returns
// its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// prune removes builds not used for maxAge, and lock files a week old.
func prune(cache string, maxAge time.Duration) {
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		age := maxAge
		if strings.HasSuffix(e.Name(), ".lock") {
			age = 7 * 24 * time.Hour
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		_ = os.RemoveAll(filepath.Join(cache, e.Name()))
	}
}

var (
	srcOnce sync.Once
	srcSum  string
	srcErr  error
	// moduleRoot is the module's directory, set by sourceHash.
	moduleRoot string
)

// sourceHash hashes every file of the module that can go into a binary:
// all but tests, version control and build output.
func sourceHash() (string, error) {
	srcOnce.Do(func() {
		moduleRoot, srcErr = findModuleRoot()
		if srcErr != nil {
			return
		}
		h := sha256.New()
		srcErr = filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				switch d.Name() {
				case ".git", ".tmp", "bin", ".demo":
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			rel, _ := filepath.Rel(moduleRoot, path)
			fmt.Fprintf(h, "%s\x00", rel)
			_, err = io.Copy(h, f)
			return err
		})
		srcSum = hex.EncodeToString(h.Sum(nil))
	})
	return srcSum, srcErr
}

// ModuleRoot returns the directory of the kctl go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	if _, err := sourceHash(); err != nil {
		t.Fatalf("ModuleRoot: %v", err)
	}
	return moduleRoot
}

func findModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the kctl module")
	}
	return filepath.Dir(gomod), nil
}

var (
	versionOnce sync.Once
	testVersion string
)

// TestVersion is the version Build stamps: `git describe --always --dirty`
// of the module, or "test" outside a git checkout.
func TestVersion() string {
	versionOnce.Do(func() {
		testVersion = "test"
		if _, err := sourceHash(); err != nil {
			return
		}
		cmd := exec.Command("git", "describe", "--always", "--dirty")
		cmd.Dir = moduleRoot
		if out, err := cmd.Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
			testVersion = strings.TrimSpace(string(out))
		}
	})
	return testVersion
}
