package kamalconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/spec"
)

// Gaps found on real configurations (issue 9): each case failed before its
// fix.

// loadYML loads deploy.yml text as a project of its own.
func loadYML(t *testing.T, yml string) (*Config, error) {
	t.Helper()
	dir := writeProject(t, map[string]string{"config/deploy.yml": yml})
	return Load(Options{Dir: dir, Version: "999", Env: map[string]string{}, Ruby: "-"})
}

// kamalRefusal is the Kamal message of a refusal, failing when there is none.
func kamalRefusal(t *testing.T, err error) string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want a *kamalconfig.Error, got %v", err)
	}
	return e.Msg
}

// A top-level proxy: true/false is not a hash: Kamal builds the root proxy
// from it and its validator refuses it. A role's proxy: may be a boolean.
func TestRootProxyBooleanRefused(t *testing.T) {
	for _, v := range []string{"false", "true"} {
		_, err := loadYML(t, baseYML+"proxy: "+v+"\n")
		if got, want := kamalRefusal(t, err), "proxy: should be a hash"; got != want {
			t.Errorf("proxy: %s refused with %q, want %q", v, got, want)
		}
	}
	yml := strings.Replace(baseYML, "  web:\n    - 1.1.1.1", "  web:\n    hosts: [1.1.1.1]\n    proxy: false\n  jobs:\n    hosts: [1.1.1.2]\n    proxy: true", 1)
	if _, err := loadYML(t, yml); err != nil {
		t.Errorf("role-level proxy booleans: %v", err)
	}
}

// ssh.port may be a string ("2222" in Kamal's docs/ssh.yml) or an integer.
func TestSSHPortString(t *testing.T) {
	for _, port := range []string{`"2222"`, "2222"} {
		if _, err := loadYML(t, baseYML+"ssh:\n  port: "+port+"\n"); err != nil {
			t.Errorf("ssh.port %s: %v", port, err)
		}
	}
	_, err := loadYML(t, baseYML+"ssh:\n  port: [22]\n")
	if got, want := kamalRefusal(t, err), "ssh/port: should be a string"; got != want {
		t.Errorf("ssh.port list refused with %q, want %q", got, want)
	}
}

// An accessory's options.restart is its --restart value (Kamal 2.12's
// Accessory#restart_policy) and is not repeated among the options.
func TestAccessoryRestartOption(t *testing.T) {
	acc := "accessories:\n  db:\n    image: mysql:8\n    host: 1.1.1.5\n    options:\n      restart: on-failure:5\n      memory: 1g\n"
	cfg, err := loadYML(t, baseYML+acc)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(spec.DockerRunArgs(cfg.AccessoryContainer("db", "")), " ")
	want := `docker run --name app-db --detach --restart on-failure:5 --network kamal --log-opt max-size="10m" --env-file .kamal/apps/app/env/accessories/db.env --label service="app-db" --memory "1g" mysql:8`
	if got != want {
		t.Errorf("accessory run:\n got %s\nwant %s", got, want)
	}
}

// Kamal's Validator#validate_restart_policy!: a role's or an accessory's
// options.restart must be a String matching
// \A(?:no|always|unless-stopped|on-failure(?::\d+)?)\z.
func TestRestartPolicyRefused(t *testing.T) {
	role := func(v string) string {
		return strings.Replace(baseYML, "  web:\n    - 1.1.1.1", "  web:\n    hosts: [1.1.1.1]\n    options:\n      restart: "+v, 1)
	}
	acc := func(v string) string {
		return baseYML + "accessories:\n  db:\n    image: mysql:8\n    host: 1.1.1.5\n    options:\n      restart: " + v + "\n"
	}
	const notString = `should be a string. Use "no" to disable restarts`
	const badValue = "should be no, always, unless-stopped, on-failure, or on-failure:N"
	for _, v := range []struct{ value, want string }{
		{"sometimes", badValue},
		{"on-failure:x", badValue},
		{"always:3", badValue},
		{"no", notString}, // YAML 1.1 reads no as false
		{"false", notString},
		{"3", notString},
		{"", notString},
	} {
		_, err := loadYML(t, role(v.value))
		if got, want := kamalRefusal(t, err), "servers/web/options/restart: "+v.want; got != want {
			t.Errorf("role restart: %s:\n got %q\nwant %q", v.value, got, want)
		}
		_, err = loadYML(t, acc(v.value))
		if got, want := kamalRefusal(t, err), "accessories/db/options/restart: "+v.want; got != want {
			t.Errorf("accessory restart: %s:\n got %q\nwant %q", v.value, got, want)
		}
	}
	for _, v := range []string{`"no"`, "always", "unless-stopped", "on-failure", "on-failure:10"} {
		for _, yml := range []string{role(v), acc(v)} {
			if _, err := loadYML(t, yml); err != nil {
				t.Errorf("restart %s: %v", v, err)
			}
		}
	}
}
