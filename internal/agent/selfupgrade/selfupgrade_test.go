package selfupgrade

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A damaged state file is refused with a message that says what to do,
// never used to name a binary to run.
func TestLoad_RefusesADamagedState(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"current":"../../bin/sh"}`, `{"current":"abc"}`, `not json`} {
		if err := os.WriteFile(filepath.Join(dir, "bin", "state.json"), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if st, err := Load(dir); err == nil || st.Current != "" {
			t.Errorf("Load(%s) = %+v, %v; want an error", bad, st, err)
		} else if !strings.Contains(err.Error(), "state.json") {
			t.Errorf("Load(%s) error %q does not name the file", bad, err)
		}
	}
	if err := Save(dir, State{Current: strings.Repeat("a", 64), Trial: true}); err != nil {
		t.Fatal(err)
	}
	if st, err := Load(dir); err != nil || st.Current != strings.Repeat("a", 64) || !st.Trial {
		t.Errorf("Load after Save = %+v, %v", st, err)
	}
}
