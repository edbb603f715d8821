package testenv

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/registry"
	"golang.org/x/crypto/bcrypt"
)

// Registry is a running docker-registry with htpasswd auth.
type Registry struct {
	Addr     string // 127.0.0.1:<port>
	User     string
	Password string
	// Proc is the registry's process.
	Proc *Proc
}

// Auth returns the base64 JSON X-Registry-Auth for the registry.
func (r Registry) Auth() string {
	b, _ := json.Marshal(registry.AuthConfig{Username: r.User, Password: r.Password, ServerAddress: r.Addr})
	return base64.URLEncoding.EncodeToString(b)
}

const registryConfig = `version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %[1]s/data
  delete:
    enabled: true
http:
  addr: %[2]s
  secret: %[3]s
auth:
  htpasswd:
    realm: kctl-test
    path: %[1]s/htpasswd
`

// StartRegistry starts Debian's docker-registry on 127.0.0.1:<free port>
// with htpasswd (bcrypt) auth and storage in t.TempDir, waits until it
// answers, and stops it (by its pid, see Start) in cleanup. Docker allows
// plain HTTP to registries on 127.0.0.0/8. Without docker-registry the test
// skips, or fails when Strict.
func StartRegistry(t testing.TB) Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		Unavailable(t, "docker-registry not installed (apt-get install docker-registry): %v", err)
	}
	dir := t.TempDir()
	reg := Registry{Addr: FreeAddr(t), User: "kctl", Password: randHex(12)}
	hash, err := bcrypt.GenerateFromPassword([]byte(reg.Password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "htpasswd"), reg.User+":"+string(hash)+"\n", 0o600)
	writeFile(t, filepath.Join(dir, "config.yml"), fmt.Sprintf(registryConfig, dir, reg.Addr, randHex(16)), 0o600)
	reg.Proc = Start(t, "docker-registry", exec.Command(bin, "serve", filepath.Join(dir, "config.yml")))
	client := &http.Client{Timeout: 2 * time.Second}
	err = Poll(15*time.Second, func() error {
		if ok, _ := reg.Proc.Exited(); ok {
			return Stop(fmt.Errorf("docker-registry exited: %s", reg.Proc.Output()))
		}
		resp, err := client.Get("http://" + reg.Addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		Unavailable(t, "docker-registry on %s: %v", reg.Addr, err)
	}
	return reg
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}
