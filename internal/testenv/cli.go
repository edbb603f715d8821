package testenv

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/version"
)

// HelpAndVersion runs a daemon's `run --help`, `version` and `--version`
// through run (what its main runs, a cli.RunFunc) and fails t unless each succeeds, the
// help has the usage line "NAME run --name NAME" and wantHelp, and both
// versions print "NAME VERSION".
func HelpAndVersion(t testing.TB, name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error, wantHelp ...string) {
	t.Helper()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--help"}, append([]string{"Usage:", name + " run --name NAME"}, wantHelp...)},
		{[]string{"version"}, []string{name + " " + version.Version + "\n"}},
		{[]string{"--version"}, []string{name + " " + version.Version + "\n"}},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), tc.args, &out, &errb); err != nil {
			t.Errorf("%s %v = %v, want nil", name, tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s %v printed %q, want it to contain %q", name, tc.args, out.String(), w)
			}
		}
	}
}
