package atomicfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kctl-dev/kctl/internal/atomicfile"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name   string
		before string // "" means no file yet
		data   string
		perm   os.FileMode
	}{
		{"new file", "", "hello\n", 0o600},
		{"replaces content", "old content that is longer", "new", 0o644},
		{"empty data", "x", "", 0o600},
		{"tightens permissions", "x", "secret", 0o400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.before != "" {
				if err := os.WriteFile(path, []byte(tt.before), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := atomicfile.WriteFile(path, []byte(tt.data), tt.perm); err != nil {
				t.Fatalf("WriteFile(%s) = %v, want nil", path, err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tt.data {
				t.Errorf("content = %q, %v; want %q", got, err, tt.data)
			}
			st, err := os.Stat(path)
			if err != nil || st.Mode().Perm() != tt.perm {
				t.Errorf("mode = %v, %v; want %v", st.Mode().Perm(), err, tt.perm)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
			}
		})
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "f")
	err := atomicfile.WriteFile(path, []byte("x"), 0o600)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WriteFile(%s) = %v, want an error wrapping os.ErrNotExist", path, err)
	}
}

func TestWriteFileOverDirectoryKeepsIt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(path, []byte("x"), 0o600); err == nil {
		t.Fatalf("WriteFile over a directory = nil, want an error")
	}
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		t.Errorf("the directory was replaced: %v %v", st, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temporary removed)", len(entries))
	}
}
