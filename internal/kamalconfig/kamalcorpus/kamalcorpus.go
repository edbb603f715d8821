// Package kamalcorpus reads the shared corpus of real Kamal configurations
// (shared/corpus/kamal-configs, see its README) for tests: every
// *.expected.json case Kamal 2.12 produced, with the conditions a test must
// reproduce, and the configuration files themselves (fuzzing seeds).
//
// It is a test helper: its functions take testing.TB and fail or skip the
// test. It does not import kamalconfig, so kamalconfig's own tests can use it.
package kamalcorpus

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// MinCases is the number of cases (*.expected.json files) of the visible
// corpus. A corpus with fewer fails Cases: an empty or truncated corpus must
// not pass as 0/0.
const MinCases = 121

// ShellStub is what ERB shell commands returned when the corpus was made.
const ShellStub = "cmd-output"

// Case is one *.expected.json: what Kamal 2.12 derived for one config file
// with one destination.
type Case struct {
	// Path is the expected.json file; Rel is Path relative to the corpus.
	Path, Rel string
	// Dir is the project directory (the folder that contains config/).
	Dir string
	// ConfigFile is relative to Dir; Destination is "" for none.
	ConfigFile, Destination, Version string
	// Env is the environment the ERB saw (every variable it reads is set).
	Env map[string]string
	// Expected is the whole expected.json.
	Expected map[string]any
	// Error is Kamal's refusal ("Class: message"); "" when Kamal accepts.
	Error string
}

// Secret is how every secret resolved when the corpus was made.
func Secret(name string) (string, error) { return "secret-" + name, nil }

// Dir finds the corpus: $KCTL_CORPUS, else shared/corpus/kamal-configs in
// or beside a directory above the test's. It skips the test when there is
// none, and fails it under KCTL_E2E=1 or CI, where the corpus must be.
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("KCTL_CORPUS"); d != "" {
		return d
	}
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
		t.Fatal("corpus shared/corpus/kamal-configs not found above the test directory (set KCTL_CORPUS)")
	}
	t.Skip("corpus shared/corpus/kamal-configs not found (set KCTL_CORPUS)")
	return ""
}

// Cases reads every case, sorted by path. It fails the test when the corpus
// holds fewer than MinCases.
func Cases(t testing.TB) []Case {
	t.Helper()
	root := Dir(t)
	var cases []Case
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".expected.json") {
			return err
		}
		c, err := readCase(root, p)
		if err != nil {
			return err
		}
		cases = append(cases, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < MinCases {
		t.Fatalf("corpus %s holds %d cases, want at least %d", root, len(cases), MinCases)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].Path < cases[j].Path })
	return cases
}

func readCase(root, p string) (Case, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return Case{}, err
	}
	c := Case{Path: p, Env: map[string]string{}}
	if err := json.Unmarshal(data, &c.Expected); err != nil {
		return Case{}, err
	}
	c.Rel, _ = filepath.Rel(root, p)
	c.ConfigFile, _ = c.Expected["config_file"].(string)
	c.Destination, _ = c.Expected["destination"].(string)
	c.Version, _ = c.Expected["version"].(string)
	c.Error, _ = c.Expected["error"].(string)
	if m, ok := c.Expected["env"].(map[string]any); ok {
		for k, v := range m {
			c.Env[k], _ = v.(string)
		}
	}
	// The expected.json sits beside the config file: climb out of its
	// folders (config/, or e.g. aws/config/ relative to the project).
	c.Dir = filepath.Dir(p)
	for range strings.Split(filepath.Dir(c.ConfigFile), "/") {
		c.Dir = filepath.Dir(c.Dir)
	}
	return c, nil
}

// DockerRun is one `docker run` argument list Kamal rendered for a case.
type DockerRun struct {
	// Kind is "role", "accessory" or "proxy"; Name is the role, the
	// accessory or the proxy host.
	Kind, Name string
	// Args is the list as Kamal renders it, starting with docker, run.
	Args []string
}

// DockerRuns lists the case's `docker run` lines, sorted by kind and name:
// each role's (for its first host), each accessory's, and each proxy boot
// given as a docker run (not the legacy `echo … | xargs docker run` form).
func (c Case) DockerRuns() []DockerRun {
	var out []DockerRun
	add := func(kind, name string, v any) {
		var args []string
		for _, a := range asSlice(v) {
			s, _ := a.(string)
			args = append(args, s)
		}
		if len(args) >= 2 && args[0] == "docker" && args[1] == "run" {
			out = append(out, DockerRun{Kind: kind, Name: name, Args: args})
		}
	}
	for _, section := range []struct{ key, kind string }{{"roles", "role"}, {"accessories", "accessory"}} {
		m, _ := c.Expected[section.key].(map[string]any)
		for name, v := range m {
			entry, _ := v.(map[string]any)
			add(section.kind, name, entry["docker_run"])
		}
	}
	boots, _ := c.Expected["proxy_boot"].(map[string]any)
	for host, v := range boots {
		add("proxy", host, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// ConfigFiles lists every configuration file of the corpus (deploy*.yml and
// the other config/*.yml files beside them), sorted.
func ConfigFiles(t testing.TB) []string {
	t.Helper()
	root := Dir(t)
	var files []string
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".yml") && filepath.Base(filepath.Dir(p)) == "config" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}
