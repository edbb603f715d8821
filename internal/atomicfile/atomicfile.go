// Package atomicfile writes files so that a crash never leaves a truncated
// one: through a temporary file in the same directory, synced, then renamed
// over the target.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile writes through a temporary file and a rename, so a crash
// never leaves a truncated file.
func WriteFile(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
