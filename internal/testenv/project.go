package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// Project is a Kamal project on disk.
type Project struct {
	// Dir holds config/deploy.yml and .kamal/.
	Dir string
}

// NewProject writes a Kamal project in dir: config/deploy.yml and
// .kamal/secrets (mode 0600, dotenv lines such as
// "KAMAL_REGISTRY_PASSWORD=…" for a Registry's Password).
func NewProject(t testing.TB, dir, deployYML, secrets string) Project {
	t.Helper()
	p := Project{Dir: dir}
	p.Write(t, "config/deploy.yml", deployYML, 0o644)
	p.Write(t, ".kamal/secrets", secrets, 0o600)
	return p
}

// Path is the path of rel (slash-separated) in the project.
func (p Project) Path(rel string) string { return filepath.Join(p.Dir, filepath.FromSlash(rel)) }

// Write writes a file of the project (rel is slash-separated), creating
// its directory.
func (p Project) Write(t testing.TB, rel, data string, perm os.FileMode) {
	t.Helper()
	writeFile(t, p.Path(rel), data, perm)
}
