package kctl

import (
	"io"
	"os"
	"slices"
	"testing"
)

// An alias's words replace its name and the rest of the arguments follow
// (Kamal's Alias::Command); real commands, flags first, unknown names and
// a missing deploy.yml pass through unchanged.
func TestExpandAlias(t *testing.T) {
	inProject(t, lifecycleYML)
	root := newRoot(io.Discard, io.Discard)
	tests := []struct {
		args, want []string
	}{
		{[]string{"console"}, []string{"app", "exec", "-i", "--reuse", "bin/rails console"}},
		{[]string{"shell", "-r", "web", "bash"}, []string{"app", "exec", "-i", "-r", "web", "bash"}},
		{[]string{"shell", "-d", "missing"}, []string{"shell", "-d", "missing"}}, // no deploy.missing.yml
		{[]string{"console", "--hosts", "web-2"}, []string{"app", "exec", "-i", "--reuse", "bin/rails console", "--hosts", "web-2"}},
		{[]string{"app", "stop"}, []string{"app", "stop"}},
		{[]string{"-q", "console"}, []string{"-q", "console"}},
		{[]string{"nope", "x"}, []string{"nope", "x"}},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := expandAlias(root, tt.args); !slices.Equal(got, tt.want) {
			t.Errorf("expandAlias(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
	t.Chdir(t.TempDir())
	if got := expandAlias(root, []string{"console"}); !slices.Equal(got, []string{"console"}) {
		t.Errorf("without deploy.yml, expandAlias(console) = %q, want it unchanged", got)
	}
}

// An alias is looked up in the config file -c names.
func TestExpandAlias_ConfigFileFlag(t *testing.T) {
	inProject(t, "service: app\nimage: a\nservers: [h]\nregistry: {server: r, username: u, password: p}\nbuilder: {arch: amd64}\n")
	if err := os.WriteFile("config/other.yml", []byte(lifecycleYML), 0o644); err != nil {
		t.Fatal(err)
	}
	root := newRoot(io.Discard, io.Discard)
	if got := expandAlias(root, []string{"console"}); !slices.Equal(got, []string{"console"}) {
		t.Errorf("expandAlias(console) without an alias = %q, want it unchanged", got)
	}
	want := []string{"app", "exec", "-i", "--reuse", "bin/rails console", "-c", "config/other.yml"}
	if got := expandAlias(root, []string{"console", "-c", "config/other.yml"}); !slices.Equal(got, want) {
		t.Errorf("expandAlias(console -c config/other.yml) = %q, want %q", got, want)
	}
}

func TestFlagValue(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-d", "staging"}, "staging"},
		{[]string{"x", "--destination", "staging"}, "staging"},
		{[]string{"--destination=staging"}, "staging"},
		{[]string{"-dstaging"}, "staging"},
		{[]string{"--config_file", "c.yml"}, ""},
		{[]string{"-d"}, ""},
		{[]string{"--debug"}, ""},
		{[]string{"x"}, ""},
	}
	for _, tt := range tests {
		if got := flagValue(tt.args, "-d", "--destination"); got != tt.want {
			t.Errorf("flagValue(%q, -d, --destination) = %q, want %q", tt.args, got, tt.want)
		}
	}
	if got := flagValue([]string{"--config_file", "c.yml"}, "-c", "--config-file"); got != "c.yml" {
		t.Errorf("flagValue(--config_file c.yml) = %q, want the underscore spelling accepted", got)
	}
}
