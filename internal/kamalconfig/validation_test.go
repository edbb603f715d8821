package kamalconfig

import (
	"errors"
	"testing"
)

// Kamal's own validation cases (test/configuration/validation_test.rb):
// each override replaces a top-level key of a valid configuration.
func TestKamalValidationMessages(t *testing.T) {
	base := "service: app\nimage: app\nbuilder: {arch: amd64}\nregistry: {username: user, password: secret}\nservers: [1.1.1.1]\n"
	cases := []struct{ override, msg string }{
		{"unknown: value", "unknown key: unknown"},
		{"unknown: value\nunknown2: value", "unknown keys: unknown, unknown2"},
		{"service: []", "service: should be a string"},
		{"image: []", "image: should be a string"},
		{"asset_path: []", "asset_path: should be a string"},
		{"hooks_path: []", "hooks_path: should be a string"},
		{"primary_role: []", "primary_role: should be a string"},
		{"minimum_version: []", "minimum_version: should be a string"},
		{"run_directory: []", "run_directory: should be a string"},
		{"require_destination: foo", "require_destination: should be a boolean"},
		{"allow_empty_roles: foo", "allow_empty_roles: should be a boolean"},
		{"deploy_timeout: foo", "deploy_timeout: should be an integer"},
		{"drain_timeout: foo", "drain_timeout: should be an integer"},
		{"retain_containers: foo", "retain_containers: should be an integer"},
		{"readiness_delay: foo", "readiness_delay: should be an integer"},
		{"volumes: foo", "volumes: should be an array"},
		{"servers: foo", "servers: should be an array or a hash"},
		{"labels: []", "labels: should be a hash"},
		{"registry: []", "registry: should be a hash"},
		{"accessories: []", "accessories: should be a hash"},
		{"env: []", "env: should be a hash"},
		{"ssh: []", "ssh: should be a hash"},
		{"sshkit: []", "sshkit: should be a hash"},
		{"builder: []", "builder: should be a hash"},
		{"proxy: []", "proxy: should be a hash"},
		{"boot: []", "boot: should be a hash"},
		{"logging: []", "logging: should be a hash"},
		{"servers: [[]]", "servers/0: should be a string or a hash"},
		{"servers: [{a: b, c: d}]", "servers/0: multiple hosts found"},
		{"servers: [{foo: {}}]", "servers/0/foo: should be a string or an array"},
		{"servers: [{foo: [[]]}]", "servers/0/foo/0: should be a string"},
		{"servers: {web: foo}", "servers/web: should be an array or a hash"},
		{"servers: {web: {hosts: ''}}", "servers/web/hosts: should be an array"},
		{"servers: {web: {hosts: [[]]}}", "servers/web/hosts/0: should be a string or a hash"},
		{"servers: {web: {options: ''}}", "servers/web/options: should be a hash"},
		{"servers: {web: {logging: {options: ''}}}", "servers/web/logging/options: should be a hash"},
		{"servers: {web: {logging: {driver: []}}}", "servers/web/logging/driver: should be a string"},
		{"servers: {web: {labels: []}}", "servers/web/labels: should be a hash"},
		{"servers: {web: {env: []}}", "servers/web/env: should be a hash"},
		{"servers: {web: {hosts: [1.1.1.1], env: {tags: {}}}}", "servers/web/env: tags are only allowed in the root env"},
		{"registry: {}", "registry/username: is required"},
		{"registry: {username: foo}", "registry/password: is required"},
		{"registry: {username: foo, password: [SECRET1, SECRET2]}", "registry/password: should be a string or an array with one string (for secret lookup)"},
		{"registry: {username: foo, password: bar, server: []}", "registry/server: should be a string"},
		{"accessories: {accessory1: []}", "accessories/accessory1: should be a hash"},
		{"accessories: {accessory1: {unknown: baz}}", "accessories/accessory1: unknown key: unknown"},
		{"accessories: {accessory1: {options: []}}", "accessories/accessory1/options: should be a hash"},
		{"accessories: {accessory1: {host: []}}", "accessories/accessory1/host: should be a string"},
		{"accessories: {accessory1: {env: []}}", "accessories/accessory1/env: should be a hash"},
		{"accessories: {accessory1: {host: host, env: {tags: {}}}}", "accessories/accessory1/env: tags are only allowed in the root env"},
		{"env: {FOO: []}", "env/FOO: should be a string"},
		{"env: {clear: {FOO: []}}", "env/clear/FOO: should be a string"},
		{"env: {secret: {FOO: []}}", "env/secret: should be an array"},
		{"env: {secret: [[]]}", "env/secret/0: should be a string"},
		{"env: {tags: []}", "env/tags: should be a hash"},
		{"env: {tags: {tag1: foo}}", "env/tags/tag1: should be a hash"},
		{"env: {tags: {tag1: {FOO: []}}}", "env/tags/tag1/FOO: should be a string"},
		{"env: {tags: {tag1: {clear: {FOO: []}}}}", "env/tags/tag1/clear/FOO: should be a string"},
		{"env: {tags: {tag1: {secret: {}}}}", "env/tags/tag1/secret: should be an array"},
		{"env: {tags: {tag1: {secret: [[]]}}}", "env/tags/tag1/secret/0: should be a string"},
		{"env: {tags: {tag1: {tags: {}}}}", "env/tags/tag1: tags are only allowed in the root env"},
		{"ssh: {foo: bar}", "ssh: unknown key: foo"},
		{"ssh: {user: []}", "ssh/user: should be a string"},
		{"ssh: {config: {}}", "ssh/config: should be a boolean or a string or an array"},
		{"sshkit: {foo: bar}", "sshkit: unknown key: foo"},
		{"sshkit: {max_concurrent_starts: foo}", "sshkit/max_concurrent_starts: should be an integer"},
		{"builder: {foo: bar}", "builder: unknown key: foo"},
		{"builder: {remote: {foo: bar}}", "builder/remote: should be a string"},
		{"builder: {arch: {}}", "builder/arch: should be an array or a string"},
		{"builder: {args: [foo]}", "builder/args: should be a hash"},
		{"builder: {cache: {options: []}}", "builder/cache/options: should be a string"},
		{"builder: {arch: [amd64, arm64], pack: {builder: heroku/builder:24, buildpacks: [heroku/ruby]}}", "builder: buildpacks only support building for one arch"},
		{"servers: {web: {hosts: [1.1.1.1], labels: {service: x}}}", "servers/web/labels/service: invalid label. destination, role, and service are reserved labels"},
		{"aliases: {deploy: app exec}", "aliases/deploy: Alias 'deploy' conflicts with a built-in command."},
		{"proxy: {host: a, hosts: [b]}", "proxy: Specify one of 'host' or 'hosts', not both"},
		{"proxy: {run: {publish: false, http_port: 8080}}", "proxy: Cannot set http_port, https_port or bind_ips when publish is false"},
		{"registry: {server: localhost:5000}\nbuilder: {arch: amd64, remote: tcp://builder}", "Local registry with remote builder requires an SSH URL (e.g., ssh://user@host)"},
		{"hooks_output: loud", "Invalid hooks_output 'loud', must be one of: quiet, verbose"},
	}
	for _, c := range cases {
		b, err := parseYAML("base.yml", []byte(base), nil)
		if err != nil {
			t.Fatal(err)
		}
		o, err := parseYAML("override.yml", []byte(c.override), nil)
		if err != nil {
			t.Fatalf("%q: %v", c.override, err)
		}
		for _, k := range o.Keys {
			b.Set(k, o.Map[k], o.KeyPos[k])
		}
		_, err = New(b, Options{Version: "1", Env: map[string]string{}, Dir: t.TempDir()})
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: want %q, got %v", c.override, c.msg, err)
			continue
		}
		if e.Msg != c.msg {
			t.Errorf("%q:\n got %q\nwant %q", c.override, e.Msg, c.msg)
		}
	}
}
