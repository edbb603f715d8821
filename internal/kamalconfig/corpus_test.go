package kamalconfig

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// corpusDir finds shared/corpus/kamal-configs by walking up from the test's
// directory (the repository is cloned with shared/ beside it in CI).
func corpusDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		for _, cand := range []string{filepath.Join(dir, "shared", "corpus", "kamal-configs"), filepath.Join(dir, "..", "shared", "corpus", "kamal-configs")} {
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				return cand
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if os.Getenv("KCTL_E2E") == "1" || os.Getenv("CI") != "" {
		t.Fatal("corpus shared/corpus/kamal-configs not found above the test directory")
	}
	t.Skip("corpus shared/corpus/kamal-configs not found")
	return ""
}

type corpusCase struct {
	path     string
	expected map[string]any
	dir      string
	opts     Options
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	root := corpusDir(t)
	var cases []corpusCase
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".expected.json") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var exp map[string]any
		if err := json.Unmarshal(data, &exp); err != nil {
			return err
		}
		cfgFile, _ := exp["config_file"].(string)
		dest, _ := exp["destination"].(string)
		version, _ := exp["version"].(string)
		dir := filepath.Dir(p)
		for range strings.Split(filepath.Dir(cfgFile), "/") {
			dir = filepath.Dir(dir)
		}
		env := map[string]string{}
		if m, ok := exp["env"].(map[string]any); ok {
			for k, v := range m {
				env[k], _ = v.(string)
			}
		}
		stub := "cmd-output"
		cases = append(cases, corpusCase{path: p, expected: exp, dir: dir, opts: Options{
			Dir: dir, ConfigFile: cfgFile, Destination: dest, Version: version, Env: env,
			Secrets:   SecretFunc(func(name string) (string, error) { return "secret-" + name, nil }),
			ShellStub: &stub, Ruby: os.Getenv("KCTL_TEST_RUBY"),
		}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].path < cases[j].path })
	return cases
}

// corpusExceptions lists cases whose outcome is knowingly different, with the
// reason (mirrored in docs/config.md).
var corpusExceptions = map[string]string{}

func normalize(v any) any {
	data, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(data, &out)
	return out
}

// sameRefusal reports whether our refusal names the same problem as Kamal's
// first line "Class: message".
func sameRefusal(want, got string) bool {
	if want == got {
		return true
	}
	wc, wm, _ := strings.Cut(want, ": ")
	gc, gm, _ := strings.Cut(got, ": ")
	if wm == gm {
		return true
	}
	// Errors raised by Ruby itself while rendering ERB: the same class and
	// the same leading words (gem counts and paths differ between machines).
	if wc == gc && wc != "Kamal::ConfigurationError" {
		n := min(len(wm), len(gm), 30)
		return wm[:n] == gm[:n]
	}
	return false
}

func TestCorpusGolden(t *testing.T) {
	cases := loadCorpus(t)
	pass := 0
	var failures []string
	for _, tc := range cases {
		name := strings.TrimPrefix(tc.path, filepath.Dir(filepath.Dir(tc.dir))+"/")
		rel, _ := filepath.Rel(corpusDir(t), tc.path)
		ok := t.Run(rel, func(t *testing.T) {
			_ = name
			got, err := Explain(tc.opts)
			if wantErr, isErr := tc.expected["error"].(string); isErr {
				if err == nil {
					t.Fatalf("Kamal refuses with %q; kctl accepted the configuration", wantErr)
				}
				var ke *Error
				if !errors.As(err, &ke) {
					t.Fatalf("error is not a *kamalconfig.Error: %v", err)
				}
				if !sameRefusal(wantErr, ke.KamalMessage()) {
					t.Fatalf("refusal differs:\n got: %s\nwant: %s", ke.KamalMessage(), wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Kamal accepts this configuration; kctl refused: %v", err)
			}
			g := normalize(got).(map[string]any)
			w := tc.expected
			for _, k := range []string{"service", "image", "primary_role"} {
				if !reflect.DeepEqual(g[k], w[k]) {
					t.Errorf("%s: got %v, want %v", k, g[k], w[k])
				}
			}
			compareMaps(t, "roles", g["roles"], w["roles"], []string{"hosts", "running_proxy", "cmd", "env_secret_keys", "docker_run", "proxy_deploy", "stop"})
			compareMaps(t, "accessories", g["accessories"], w["accessories"], []string{"service", "hosts", "docker_run"})
			compareMaps(t, "proxy_boot", g["proxy_boot"], w["proxy_boot"], nil)
		})
		if ok {
			pass++
		} else {
			failures = append(failures, rel)
		}
	}
	t.Logf("corpus: %d/%d cases match Kamal 2.12", pass, len(cases))
	if len(failures) > 0 {
		t.Logf("failing: %s", strings.Join(failures, "\n  "))
	}
}

func compareMaps(t *testing.T, what string, got, want any, fields []string) {
	t.Helper()
	gm, _ := got.(map[string]any)
	wm, _ := want.(map[string]any)
	var gk, wk []string
	for k := range gm {
		gk = append(gk, k)
	}
	for k := range wm {
		wk = append(wk, k)
	}
	sort.Strings(gk)
	sort.Strings(wk)
	if !reflect.DeepEqual(gk, wk) {
		t.Errorf("%s: got names %v, want %v", what, gk, wk)
		return
	}
	for _, k := range wk {
		if fields == nil {
			if !reflect.DeepEqual(gm[k], wm[k]) {
				t.Errorf("%s.%s:\n got: %s\nwant: %s", what, k, js(gm[k]), js(wm[k]))
			}
			continue
		}
		g, _ := gm[k].(map[string]any)
		w, _ := wm[k].(map[string]any)
		for _, f := range fields {
			if !reflect.DeepEqual(g[f], w[f]) {
				t.Errorf("%s.%s.%s:\n got: %s\nwant: %s", what, k, f, js(g[f]), js(w[f]))
			}
		}
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
