package kamalconfig

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/kamalconfig/erb"
	"github.com/kctl-dev/kctl/internal/kamalconfig/kamalcorpus"
)

// corpusOptions are the load options that reproduce how the corpus was
// made (README: env, secrets, shell stub), rendering with ruby when
// KCTL_TEST_RUBY or PATH has it.
func corpusOptions(tc kamalcorpus.Case) Options {
	stub := kamalcorpus.ShellStub
	return Options{
		Dir: tc.Dir, ConfigFile: tc.ConfigFile, Destination: tc.Destination, Version: tc.Version, Env: tc.Env,
		Secrets: SecretFunc(kamalcorpus.Secret), ShellStub: &stub, Ruby: os.Getenv("KCTL_TEST_RUBY"),
	}
}

func normalize(v any) any {
	data, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(data, &out)
	return out
}

// refusalNormalisations are the only differences allowed between Kamal's
// refusal and kctl's, each for a part of the message that depends on the
// machine that rendered the ERB rather than on the configuration:
//   - Gem::MissingSpecError counts the gems installed where ruby ran
//     ("among 103 total gem(s)" on the machine that made the corpus, a
//     different number on any other).
var refusalNormalisations = []struct {
	name string
	re   *regexp.Regexp
	repl string
}{
	{"installed gem count", regexp.MustCompile(`\bamong \d+ total gem\(s\)`), "among N total gem(s)"},
}

// sameRefusal reports whether our refusal is Kamal's first line
// "Class: message", exactly, up to refusalNormalisations. An empty message
// or class never matches.
func sameRefusal(want, got string) bool {
	for _, n := range refusalNormalisations {
		want = n.re.ReplaceAllString(want, n.repl)
		got = n.re.ReplaceAllString(got, n.repl)
	}
	class, msg, ok := strings.Cut(want, ": ")
	if !ok || class == "" || strings.TrimSpace(msg) == "" {
		return false
	}
	return want == got
}

func TestSameRefusal(t *testing.T) {
	tests := []struct {
		want, got string
		same      bool
	}{
		{"Kamal::ConfigurationError: unknown key: traefik", "Kamal::ConfigurationError: unknown key: traefik", true},
		{"Gem::MissingSpecError: Could not find 'fizzy-saas' (>= 0) among 103 total gem(s)", "Gem::MissingSpecError: Could not find 'fizzy-saas' (>= 0) among 90 total gem(s)", true},
		{"Gem::MissingSpecError: Could not find 'fizzy-saas' (>= 0) among 103 total gem(s)", "Gem::MissingSpecError: Could not find 'fizzy' (>= 0) among 103 total gem(s)", false},
		{"Kamal::ConfigurationError: unknown key: traefik", "Kamal::ConfigurationError: unknown key: healthcheck", false},
		{"Kamal::ConfigurationError: unknown key: traefik", "RuntimeError: unknown key: traefik", false},
		{"NameError: uninitialized constant SERVER_IP", "NameError: uninitialized constant SERVER_IP_ADDRESS", false},
		{"NameError: uninitialized constant AWS_ACCOUNT_ID", "NameError: uninitialized constant AWS_ACCOUNT_", false},
		{"Kamal::ConfigurationError: ", "Kamal::ConfigurationError: ", false},
		{"", "", false},
		{": x", ": x", false},
		{"Kamal::ConfigurationError: x", "Kamal::ConfigurationError: x ", false},
	}
	for _, tt := range tests {
		if got := sameRefusal(tt.want, tt.got); got != tt.same {
			t.Errorf("sameRefusal(%q, %q) = %v, want %v", tt.want, tt.got, got, tt.same)
		}
	}
}

// checkCase compares what kctl derives for a corpus case with what Kamal
// derived (or Kamal's refusal).
func checkCase(t *testing.T, tc kamalcorpus.Case, opts Options) {
	t.Helper()
	got, err := Explain(opts)
	if tc.Error != "" {
		if err == nil {
			t.Fatalf("Kamal refuses with %q; kctl accepted the configuration", tc.Error)
		}
		var ke *Error
		if !errors.As(err, &ke) {
			t.Fatalf("error is not a *kamalconfig.Error: %v", err)
		}
		if !sameRefusal(tc.Error, ke.KamalMessage()) {
			t.Fatalf("refusal differs:\n got: %s\nwant: %s", ke.KamalMessage(), tc.Error)
		}
		return
	}
	if err != nil {
		t.Fatalf("Kamal accepts this configuration; kctl refused: %v", err)
	}
	g := normalize(got).(map[string]any)
	w := tc.Expected
	for _, k := range []string{"service", "image", "primary_role"} {
		if !reflect.DeepEqual(g[k], w[k]) {
			t.Errorf("%s: got %v, want %v", k, g[k], w[k])
		}
	}
	compareMaps(t, "roles", g["roles"], w["roles"], []string{"hosts", "running_proxy", "cmd", "env_secret_keys", "docker_run", "proxy_deploy", "stop"})
	compareMaps(t, "accessories", g["accessories"], w["accessories"], []string{"service", "hosts", "docker_run"})
	compareMaps(t, "proxy_boot", g["proxy_boot"], w["proxy_boot"], nil)
}

func TestCorpusGolden(t *testing.T) {
	cases := kamalcorpus.Cases(t)
	pass := 0
	var failures []string
	for _, tc := range cases {
		if t.Run(tc.Rel, func(t *testing.T) { checkCase(t, tc, corpusOptions(tc)) }) {
			pass++
		} else {
			failures = append(failures, tc.Rel)
		}
	}
	t.Logf("corpus: %d/%d cases match Kamal 2.12", pass, len(cases))
	if len(failures) > 0 {
		t.Logf("failing: %s", strings.Join(failures, "\n  "))
	}
}

// minGoSubsetCases is how many corpus cases the Go ERB subset renders on
// its own (no ruby); fewer means the subset lost a construct.
const minGoSubsetCases = 97

// The Go ERB subset, without ruby, either renders a corpus case to exactly
// what Kamal derived or says the file is beyond it: it never renders a
// different configuration.
func TestCorpusGoSubset(t *testing.T) {
	rendered := 0
	for _, tc := range kamalcorpus.Cases(t) {
		opts := corpusOptions(tc)
		opts.ERB, opts.Ruby = erb.GoOnly, "-"
		var ke *Error
		if _, err := Explain(opts); errors.As(err, &ke) && ke.Kind == "kctl::TemplateError" {
			continue // needs ruby
		}
		rendered++
		t.Run(tc.Rel, func(t *testing.T) { checkCase(t, tc, opts) })
	}
	t.Logf("Go ERB subset: %d cases rendered without ruby", rendered)
	if rendered < minGoSubsetCases {
		t.Errorf("the Go ERB subset renders %d corpus cases, want at least %d", rendered, minGoSubsetCases)
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
