package docker

import (
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestNames_PrefixRoundTrip(t *testing.T) {
	for _, pfx := range []string{"", "web-1."} {
		r := &Runtime{cfg: Config{NamePrefix: pfx}}
		spec := "svc-web-v1"
		eng := r.engineName(spec)
		if eng != pfx+spec {
			t.Errorf("engineName(%q) with prefix %q = %q, want %q", spec, pfx, eng, pfx+spec)
		}
		if got, ok := r.specName("/" + eng); !ok || got != spec {
			t.Errorf("specName(/%s) = %q, %v; want %q, true", eng, got, ok, spec)
		}
		if got := r.name(container.Summary{Names: []string{"/" + eng}}); got != spec {
			t.Errorf("name(%s) = %q, want %q", eng, got, spec)
		}
	}
	r := &Runtime{cfg: Config{NamePrefix: "web-1."}}
	if got, ok := r.specName("/web-2.svc-web-v1"); ok {
		t.Errorf("specName of another agent's container = %q, true; want false", got)
	}
	if got := r.name(container.Summary{Names: []string{"/svc-web-v1"}}); got != "" {
		t.Errorf("name of an unprefixed container = %q, want empty", got)
	}
}
