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
