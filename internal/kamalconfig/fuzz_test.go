package kamalconfig

import (
	"testing"

	"github.com/kctl-dev/kctl/internal/kamalconfig/erb"
	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

// FuzzLoad feeds arbitrary deploy.yml text through rendering (Go subset
// only), YAML loading, validation and derivation; it must never panic.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(baseYML))
	f.Add([]byte(baseYML + "proxy:\n  host: a.com\n  ssl: true\naccessories:\n  db:\n    image: x\n    roles: [web]\n    port: 3306\n    files: [a:/b]\n    directories: [c:/d]\n"))
	f.Add([]byte("x-a: &a {b: 1}\nservice: s\n<<: *a\n"))
	f.Add([]byte("service: <%= ENV['X'] %>\n<% if ENV['Y'] -%>\nimage: i\n<% end -%>\n"))
	f.Add([]byte(baseYML + "servers:\n  web:\n    hosts:\n      - 1.1.1.1: [a]\nenv:\n  tags:\n    a: {clear: {X: 1}}\n"))
	f.Add([]byte("service: \"<%= \"#{ENV['X']}-#{ENV.fetch('Y', 'z')}\" %>\"\n<% a = ENV['X'] || 'b' -%>\nimage: <%= a.strip %>\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{Dir: dir, Version: "v1", Env: map[string]string{"X": "x"}, ERB: erb.GoOnly, Ruby: "-",
			Secrets: SecretFunc(func(n string) (string, error) { return "s", nil }), HostnameSuffix: func() string { return "000000000000" }}
		rendered, lm, err := opts.render("config/deploy.yml", data, opts.Env)
		if err != nil {
			return
		}
		raw, err := parseYAML("config/deploy.yml", rendered, lm)
		if err != nil || raw.Kind != yaml11.KindMap {
			return
		}
		cfg, err := New(raw, opts)
		if err != nil {
			return
		}
		out := cfg.Explain()
		if out["service"] == nil {
			t.Fatal("accepted configuration without a service")
		}
	})
}
