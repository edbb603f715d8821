package kctl

import (
	"testing"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

// TestBootOptions checks `proxy boot_config get` prints the boot options as
// Kamal's `Host <host>: <options>` line does.
func TestBootOptions(t *testing.T) {
	c := &specv1.Container{
		Publish: []string{"10.0.0.1:8080:80", "10.0.0.1:8443:443"},
		Logging: &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "50m"}}},
		Expose:  []string{"9090"},
		Options: []*specv1.Option{{Name: "cpus", Value: "1"}, {Name: "init", Bare: true}},
	}
	const want = "--publish 10.0.0.1:8080:80 --publish 10.0.0.1:8443:443 --log-opt max-size=50m --expose=9090 --cpus=1 --init"
	if got := bootOptions(c); got != want {
		t.Errorf("bootOptions = %q, want %q", got, want)
	}
	if got := bootOptions(&specv1.Container{}); got != "" {
		t.Errorf("bootOptions(empty) = %q, want nothing", got)
	}
}

// TestBootConfigLine checks the whole `Host h: …` line against Kamal's
// `echo "#{options} #{image}:#{version} #{run_command}"`, stripped.
func TestBootConfigLine(t *testing.T) {
	legacy := &specv1.Container{
		Image: "basecamp/kamal-proxy:v0.9.2", Publish: []string{"80:80", "443:443"}, Cmd: "",
		Logging: &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m"}}},
	}
	if got, want := bootConfigLine(legacy), "--publish 80:80 --publish 443:443 --log-opt max-size=10m basecamp/kamal-proxy:v0.9.2"; got != want {
		t.Errorf("bootConfigLine(default) = %q, want %q", got, want)
	}
	legacy.Cmd = "kamal-proxy run"
	if got, want := bootConfigLine(legacy), "--publish 80:80 --publish 443:443 --log-opt max-size=10m basecamp/kamal-proxy:v0.9.2"; got != want {
		t.Errorf("bootConfigLine(run without options) = %q, want %q", got, want)
	}
	run := &specv1.Container{
		Image: "registry:4443/acme/kamal-proxy:v0.9.3", Expose: []string{"9090"}, Logging: &specv1.Logging{},
		Cmd: "kamal-proxy run --debug --metrics-port 9090",
	}
	if got, want := bootConfigLine(run), "--expose=9090 registry:4443/acme/kamal-proxy:v0.9.3 kamal-proxy run --debug --metrics-port 9090"; got != want {
		t.Errorf("bootConfigLine(run options) = %q, want %q", got, want)
	}
}
