package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParse_PflagSemantics(t *testing.T) {
	svc, fl, err := parse([]string{"app-web", "--target=a:80", "--host=a.com,b.com", "--host", "c.com", "--tls", "--buffer-requests=false", "--deploy-timeout=5s"}, deployFlags, true)
	if err != nil {
		t.Fatal(err)
	}
	if svc != "app-web" || fmt.Sprint(fl.slice("host")) != "[a.com b.com c.com]" || !fl.boolean("tls", false) || fl.boolean("buffer-requests", true) || fl.duration("deploy-timeout", 0) != 5*time.Second {
		t.Errorf("parse = %q %v", svc, fl)
	}
	if _, _, err := parse([]string{"x", "--frob"}, deployFlags, true); err == nil || err.Error() != "unknown flag: --frob" {
		t.Errorf("unknown flag error = %v, want unknown flag: --frob", err)
	}
	if _, _, err := parse([]string{}, deployFlags, true); err == nil || err.Error() != "accepts 1 arg(s), received 0" {
		t.Errorf("missing service error = %v", err)
	}
}

func newTestServer(t *testing.T) *server {
	t.Helper()
	return &server{services: map[string]*service{}, statePath: filepath.Join(t.TempDir(), "kamal-proxy.state")}
}

func args(service string, target string) DeployArgs {
	return DeployArgs{Service: service, TargetURLs: []string{target}, DeployTimeout: 2 * time.Second, DrainTimeout: time.Second,
		HealthPath: "/up", HealthInterval: 20 * time.Millisecond, HealthTimeout: time.Second, StripPrefix: true}
}

func TestServer_DeployStopResumeRemove(t *testing.T) {
	var healthy atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" && !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "v1")
	}))
	defer up.Close()
	target := strings.TrimPrefix(up.URL, "http://")
	s := newTestServer(t)
	err := s.deploy(args("app-web", target))
	if err == nil || err.Error() != "target failed to become healthy within configured timeout (2s)" {
		t.Fatalf("deploy of an unhealthy target = %v", err)
	}
	healthy.Store(true)
	if err := s.deploy(args("app-web", target)); err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://x.test/", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != 200 || body != "v1" {
		t.Errorf("GET = %d %q, want 200 v1", code, body)
	}
	if err := s.deploy(args("other", target)); err != errHostConflict {
		t.Errorf("conflicting deploy = %v, want %v", err, errHostConflict)
	}
	h := &handler{s: s}
	var ok bool
	if err := h.Stop(StopArgs{Service: "app-web", Message: "Back soon"}, &ok); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != 503 || !strings.Contains(body, "Back soon") {
		t.Errorf("stopped GET = %d %q, want 503 with message", code, body)
	}
	// Restored state keeps the stop and the route.
	s2 := newTestServer(t)
	s2.statePath = s.statePath
	s2.restore()
	if sv := s2.services["app-web"]; sv == nil || sv.State != stateStopped || sv.Targets[0] != target {
		t.Errorf("restored = %+v", sv)
	}
	if err := h.Resume(ServiceArgs{Service: "app-web"}, &ok); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(); code != 200 {
		t.Errorf("resumed GET = %d, want 200", code)
	}
	if err := h.Remove(ServiceArgs{Service: "app-web"}, &ok); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(ServiceArgs{Service: "app-web"}, &ok); err != errServiceNotFound {
		t.Errorf("second remove = %v, want service not found", err)
	}
	if code, _ := get(); code != 404 {
		t.Errorf("removed GET = %d, want 404", code)
	}
}
