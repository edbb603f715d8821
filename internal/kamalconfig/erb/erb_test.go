package erb

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRender_GoSubset(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".ruby-version"), []byte("3.4.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `a: <%= ENV["A"] %>
b: <%= ENV.fetch('MISSING', "dflt") %>
c: <%= File.read(".ruby-version").strip %>
<%# a comment %>
<% if ENV["A"] -%>
d: yes-branch
<% else -%>
d: no-branch
<% end -%>
e: <%= ENV['NOPE'] || ENV["A"] %>
f: <%= ENV.fetch("N", 86400) %>
`
	out, lm, err := Render([]byte(src), &Options{File: "f.yml", Dir: dir, Env: map[string]string{"A": "x"}, Mode: GoOnly})
	if err != nil {
		t.Fatal(err)
	}
	want := "a: x\nb: dflt\nc: 3.4.1\n\nd: yes-branch\ne: x\nf: 86400\n"
	if string(out) != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", out, want)
	}
	if len(lm) < 6 || lm[4] != 6 || lm[5] != 10 {
		t.Errorf("line map: %v", lm)
	}
	_, _, err = Render([]byte("a: <%= ENV.fetch(\"X\") %>\n"), &Options{File: "f.yml", Env: map[string]string{}, Mode: GoOnly})
	if err == nil || !strings.Contains(err.Error(), "key not found") {
		t.Errorf("fetch without default: %v", err)
	}
	_, _, err = Render([]byte("x: 1\na: <%= `hostname` %>\n"), &Options{File: "f.yml", Env: map[string]string{}, Mode: GoOnly})
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || !strings.Contains(e.Msg, "`hostname`") {
		t.Errorf("unsupported construct must name file, line and construct: %v", err)
	}
}

func TestRender_RubyFallback(t *testing.T) {
	ruby := requireRuby(t)
	stub := "cmd-output"
	src := "a: <%= `git rev-parse HEAD`.strip %>\nb: <%= [1,2].map { |x| x * 2 }.join(',') %>\nc: <%= ENV['A'] %>\n"
	out, _, err := Render([]byte(src), &Options{File: "f.yml", Dir: t.TempDir(), Env: map[string]string{"A": "x"}, Ruby: ruby, ShellStub: &stub})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "a: cmd-output\nb: 2,4\nc: x\n" {
		t.Errorf("ruby rendered %q", out)
	}
	_, _, err = Render([]byte("x: 1\ny: <%= NOPE %>\n"), &Options{File: "f.yml", Dir: t.TempDir(), Env: map[string]string{}, Ruby: ruby})
	var e *Error
	if !errors.As(err, &e) || e.Kind != "NameError" || e.Line != 2 {
		t.Errorf("ruby error: %v (%#v)", err, e)
	}
}

func TestRender_Interpolation(t *testing.T) {
	src := "a: \"<%= \"#{ENV['A']}-#{ENV.fetch(\"B\", \"b\")}\" %>\"\n<% h = \"x#{ENV['A']}\" %>b: <%= h %>\n"
	out, _, err := Render([]byte(src), &Options{File: "f.yml", Env: map[string]string{"A": "1"}, Mode: GoOnly})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "a: \"1-b\"\nb: x1\n" {
		t.Errorf("got %q", out)
	}
}

// requireRuby returns the ruby executable or skips (fails under KCTL_E2E=1
// or CI, where ruby must be installed).
func requireRuby(t *testing.T) string {
	t.Helper()
	ruby, err := exec.LookPath("ruby")
	if err != nil {
		if os.Getenv("KCTL_E2E") == "1" || os.Getenv("CI") != "" {
			t.Fatal("ruby is required (apt-get install ruby)")
		}
		t.Skip("ruby not installed")
	}
	return ruby
}

// Only Options.ShellStub stubs commands: the variable that used to carry it
// to ruby changes nothing when an operator's environment sets it.
func TestRender_ShellStubIsNotAnEnvironmentVariable(t *testing.T) {
	ruby := requireRuby(t)
	stub := "stubbed"
	src := []byte("a: <%= `echo real`.strip %>\nb: <%= %x(echo real).strip %>\n")
	tests := []struct {
		name string
		stub *string
		env  map[string]string
		want string
	}{
		{"no stub", nil, map[string]string{}, "a: real\nb: real\n"},
		{"stub variable in the environment", nil, map[string]string{"KCTL_ERB_SHELL_STUB": "stubbed"}, "a: real\nb: real\n"},
		{"stub option", &stub, map[string]string{}, "a: stubbed\nb: stubbed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := Render(src, &Options{File: "f.yml", Dir: t.TempDir(), Env: tt.env, Mode: RubyOnly, Ruby: ruby, ShellStub: tt.stub})
			if err != nil || string(out) != tt.want {
				t.Errorf("Render(%q) = %q, %v; want %q", src, out, err, tt.want)
			}
		})
	}
}

// The ternary operator and the RUBY_ENGINE constants, with the Go subset
// only (no ruby): Rails' generated deploy.yml and real configs use both.
func TestRender_TernaryAndRubyEngine(t *testing.T) {
	env := map[string]string{"PR": "42", "EMPTY": "", "RBENV_VERSION": "3.3.0"}
	tests := []struct{ src, want string }{
		// Rails' generated deploy.yml, in a comment: the || chain stops at
		// the first value set.
		{`#   RUBY_VERSION: <%= ENV["RBENV_VERSION"] || ENV["rvm_ruby_string"] || "#{RUBY_ENGINE}-#{RUBY_ENGINE_VERSION}" %>`, "#   RUBY_VERSION: 3.3.0"},
		{`v: <%= ENV["NOPE"] || "#{RUBY_ENGINE}-#{RUBY_ENGINE_VERSION}" %>`, "v: ruby-" + RubyEngineVersion},
		{`v: <%= RUBY_VERSION %>`, "v: " + RubyEngineVersion},
		{`<% pr = ENV["PR"] %>slug: <%= pr ? "pr-#{pr}" : "sandbox" %>`, "slug: pr-42"},
		{`<% pr = ENV["NOPE"] %>slug: <%= pr ? "pr-#{pr}" : "sandbox" %>`, "slug: sandbox"},
		{`<% u = ENV['EMPTY'].to_s.strip; user = u.empty? ? 'deploy' : u %>user: <%= user %>`, "user: deploy"},
		{`v: <%= ENV["PR"] == "42" ? "a" : ENV["X"] ? "b" : "c" %>`, "v: a"},
		{`v: <%= ENV["PR"] == "41" ? "a" : ENV["X"] ? "b" : "c" %>`, "v: c"},
		{`v: <%= (ENV["NOPE"] ? 1 : 2) %>`, "v: 2"},
		{`v: <%= !ENV["NOPE"] ? "unset" : "set" %>`, "v: unset"},
		// The branch not taken is parsed but not evaluated (Ruby raises
		// nothing for it).
		{`v: <%= ENV["PR"] ? "x" : ENV.fetch("MISSING") %>`, "v: x"},
		{`v: <%= ENV["NOPE"] ? File.read("missing").strip : "y" %>`, "v: y"},
		{`v: <%= ENV["PR"] || ENV.fetch("MISSING") %>`, "v: 42"},
		{`v: <%= ENV["NOPE"] && ENV.fetch("MISSING").strip %>`, "v: "},
	}
	for _, tt := range tests {
		out, _, err := Render([]byte(tt.src), &Options{File: "f.yml", Dir: t.TempDir(), Env: env, Mode: GoOnly})
		if err != nil || string(out) != tt.want {
			t.Errorf("Render(%s) = %q, %v; want %q", tt.src, out, err, tt.want)
		}
	}
	// The branch taken still raises; a malformed ternary is beyond the subset.
	_, _, err := Render([]byte(`v: <%= ENV["NOPE"] ? "x" : ENV.fetch("MISSING") %>`), &Options{File: "f.yml", Env: env, Mode: GoOnly})
	var e *Error
	if !errors.As(err, &e) || e.Kind != "KeyError" {
		t.Errorf("taken branch: %v, want KeyError", err)
	}
	for _, src := range []string{`v: <%= ENV["PR"] ? "x" %>`, `v: <%= ENV["PR"] ? : "y" %>`, `v: <%= :sym %>`} {
		_, _, err := Render([]byte(src), &Options{File: "f.yml", Env: env, Mode: GoOnly})
		if !errors.As(err, &e) || e.Kind != "kctl::TemplateError" {
			t.Errorf("Render(%s) = %v, want the subset's refusal", src, err)
		}
	}
}
