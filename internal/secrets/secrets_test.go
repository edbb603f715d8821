package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseQuotingAndSubstitution(t *testing.T) {
	text := `# comment
export A=plain value # trailing comment
B='single $A \n kept'
C="double $A\nline2 \"q\" \$A"
D=${A}-suffix
E="multi
line"
F=
G: colon
H=$(echo hi)
I=\$(not run)
J=$UNDEFINED_X|
K="${A}"
L=x\\y\$A
`
	var cmds []string
	got, order, err := Parse(text, map[string]string{"HOME": "/root"}, func(c string) (string, error) {
		cmds = append(cmds, c)
		return "out\n", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"A": "plain value",
		"B": `single $A \n kept`,
		"C": "double plain value\nline2 \"q\" $A",
		"D": "plain value-suffix",
		"E": "multi\nline",
		"F": "",
		"G": "colon",
		"H": "out",
		"I": "$(not run)",
		"J": "|",
		"K": "plain value",
		"L": `x\y$A`,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
	if !reflect.DeepEqual(cmds, []string{"echo hi"}) {
		t.Errorf("commands: got %v", cmds)
	}
	if order[0] != "A" {
		t.Errorf("order: got %v", order)
	}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStoreFilesAndInlineCommands(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, ".kamal/secrets-common", "COMMON=c\nOVER=common\n")
	writeFile(t, dir, ".kamal/secrets", "OVER=base\nSECRETS=$(kamal secrets fetch --adapter test --account acct --from Vault/Item A B)\nA=$(kamal secrets extract A $SECRETS)\nB=$(kctl secrets extract B ${SECRETS})\n")
	writeFile(t, dir, ".kamal/secrets.staging", "OVER=staging\n")

	s := New(Options{Dir: dir, Env: map[string]string{}})
	for k, w := range map[string]string{"COMMON": "c", "OVER": "base", "A": "A/metI/tluaV", "B": "B/metI/tluaV"} {
		got, err := s.Secret(k)
		if err != nil || got != w {
			t.Errorf("%s: got %q, %v; want %q", k, got, err, w)
		}
	}
	st := New(Options{Dir: dir, Destination: "staging", Env: map[string]string{}})
	if got, _ := st.Secret("OVER"); got != "staging" {
		t.Errorf("destination file: got %q", got)
	}
	if _, err := st.Secret("A"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "Secret 'A' not found in .kamal/secrets-common, .kamal/secrets.staging") {
		t.Errorf("missing secret error: %v", err)
	}
	none := New(Options{Dir: t.TempDir(), Env: map[string]string{}})
	if _, err := none.Secret("X"); err == nil || !strings.Contains(err.Error(), "no secret files") {
		t.Errorf("no files error: %v", err)
	}
}

type failingRunner struct{ ExecRunner }

func (failingRunner) LookPath(string) (string, error) { return "", errors.New("nope") }

func TestAdapterMissingCLI(t *testing.T) {
	for _, a := range []string{"1password", "bitwarden", "bitwarden-sm", "lastpass", "aws_secrets_manager", "gcp", "doppler", "enpass", "passbolt"} {
		_, err := Fetch(context.Background(), failingRunner{}, FetchArgs{Adapter: a, Account: "acct", Secrets: []string{"X"}})
		if err == nil || !strings.Contains(err.Error(), "CLI is not installed") {
			t.Errorf("%s: got %v", a, err)
		}
	}
	if _, err := Fetch(context.Background(), failingRunner{}, FetchArgs{Adapter: "1password", Secrets: []string{"X"}}); err == nil || !strings.Contains(err.Error(), "--account") {
		t.Errorf("account required: %v", err)
	}
}

type fakeRunner struct{ calls [][]string }

func (f *fakeRunner) LookPath(n string) (string, error) { return "/usr/bin/" + n, nil }
func (f *fakeRunner) Run(_ context.Context, _ []string, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, append([]string{name}, args...))
	switch {
	case name == "op" && args[0] == "account":
		return nil, nil
	case name == "op" && args[0] == "item":
		return []byte(`[{"reference":"op://Vault/Item/A","value":"s3cr3t-a"},{"reference":"op://Vault/Item/B","value":"s3cr3t-b"}]`), nil
	}
	return nil, errors.New("unexpected")
}

func TestOnePasswordArguments(t *testing.T) {
	r := &fakeRunner{}
	got, err := Fetch(context.Background(), r, FetchArgs{Adapter: "1password", Account: "acct", From: "Vault/Item", Secrets: []string{"A", "B"}})
	if err != nil {
		t.Fatal(err)
	}
	if got["Vault/Item/A"] != "s3cr3t-a" || got["Vault/Item/B"] != "s3cr3t-b" {
		t.Errorf("got %v", got)
	}
	want := []string{"op", "item", "get", "Item", "--vault", "Vault", "--fields", "label=A,label=B", "--format", "json", "--account", "acct"}
	if !reflect.DeepEqual(r.calls[1], want) {
		t.Errorf("op call:\n got %q\nwant %q", r.calls[1], want)
	}
}

// Secret values must never show up in errors.
func TestErrorsNeverContainValues(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, ".kamal/secrets", "PW=hunter2-very-secret\nBAD=$(false $PW)\n")
	s := New(Options{Dir: dir, Env: map[string]string{"PATH": os.Getenv("PATH")}})
	_, err := s.Secret("PW")
	if err == nil {
		t.Fatal("want an error from the failing command")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks a secret: %v", err)
	}
	if _, err := Extract("X", `{"A":"hunter2-very-secret"}`); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("extract error leaks or is missing: %v", err)
	}
	if _, err := Extract("X", `not json hunter2-very-secret`); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("extract error leaks or is missing: %v", err)
	}
}

func TestDestinationVisibleToSubstitution(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, ".kamal/secrets.beta", "WHERE=$KAMAL_DESTINATION\n")
	s := New(Options{Dir: dir, Destination: "beta", Env: map[string]string{}})
	if got, err := s.Secret("WHERE"); err != nil || got != "beta" {
		t.Errorf("got %q %v", got, err)
	}
}
