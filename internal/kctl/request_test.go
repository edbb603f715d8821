package kctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/kamalconfig"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

func loadTestProject(t *testing.T, deployYML string, secrets map[string]string) *kamalconfig.Config {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "config"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "config", "deploy.yml"), []byte(deployYML), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := kamalconfig.Load(kamalconfig.Options{
		Dir: dir, Version: "v1", Env: map[string]string{},
		Secrets: kamalconfig.SecretFunc(func(name string) (string, error) {
			v, ok := secrets[name]
			if !ok {
				return "", fmt.Errorf("Secret '%s' not found", name)
			}
			return v, nil
		}),
		HostnameSuffix: func() string { return "0123456789ab" },
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

const twoRoles = `
service: app
image: team/app
servers:
  web:
    - web-1
    - web-2
  job:
    hosts:
      - job-1
    cmd: bin/jobs
proxy:
  host: app.example.com
registry:
  server: localhost:5555
  username: u
  password:
    - REGISTRY_PASSWORD
env:
  secret:
    - DB_PASSWORD
builder:
  arch: amd64
boot:
  limit: 50%
accessories:
  db:
    image: postgres:16
    host: job-1
    env:
      secret:
        - DB_PASSWORD
`

func TestBuildRequest(t *testing.T) {
	cfg := loadTestProject(t, twoRoles, map[string]string{"REGISTRY_PASSWORD": "rp", "DB_PASSWORD": "dbp"})
	req, err := buildRequest(cfg, "", requestOptions{Command: "setup", WithAccessories: true})
	if err != nil {
		t.Fatal(err)
	}
	if req.GetImage() != "localhost:5555/team/app:v1" || req.GetLatestTag() != "latest" {
		t.Errorf("image, latest = %s, %s", req.GetImage(), req.GetLatestTag())
	}
	if got := req.GetBoot().GetLimit(); got != 1 {
		t.Errorf("boot limit 50%% of 3 hosts = %d, want 1", got)
	}
	var roles []string
	for _, r := range req.GetRoles() {
		var hs []string
		for _, h := range r.GetHosts() {
			hs = append(hs, h.GetHost())
			if kv := h.GetContainer().GetSecretEnv(); len(kv) != 1 || kv[0].GetValue() != "dbp" {
				t.Errorf("%s/%s secret env = %v, want DB_PASSWORD=dbp", r.GetName(), h.GetHost(), kv)
			}
		}
		roles = append(roles, fmt.Sprintf("%s%v proxy=%v", r.GetName(), hs, r.GetProxy() != nil))
	}
	if got, want := strings.Join(roles, " "), "web[web-1 web-2] proxy=true job[job-1] proxy=false"; got != want {
		t.Errorf("roles = %s, want %s", got, want)
	}
	if n := len(req.GetProxyHosts()); n != 2 {
		t.Errorf("proxy hosts = %d, want 2", n)
	}
	if a := req.GetAccessories(); len(a) != 1 || a[0].GetHosts()[0].GetHost() != "job-1" {
		t.Errorf("accessories = %v", a)
	}
	if req.GetRegistry().GetPassword() != "rp" {
		t.Errorf("registry password not resolved")
	}
}

func TestBuildRequest_Selection(t *testing.T) {
	cfg := loadTestProject(t, twoRoles, map[string]string{"REGISTRY_PASSWORD": "rp", "DB_PASSWORD": "dbp"})
	tests := []struct {
		sel  selection
		want string
	}{
		{selection{Roles: []string{"job"}}, "job[job-1]"},
		{selection{Hosts: []string{"web-2"}}, "web[web-2]"},
		{selection{Hosts: []string{"web-*"}}, "web[web-1 web-2]"},
		{selection{Primary: true}, "web[web-1]"},
	}
	for _, tt := range tests {
		req, err := buildRequest(cfg, "", requestOptions{Command: "deploy", Selection: tt.sel})
		if err != nil {
			t.Fatalf("buildRequest(%+v): %v", tt.sel, err)
		}
		var got []string
		for _, r := range req.GetRoles() {
			var hs []string
			for _, h := range r.GetHosts() {
				hs = append(hs, h.GetHost())
			}
			got = append(got, fmt.Sprintf("%s%v", r.GetName(), hs))
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("buildRequest(%+v) roles = %v, want %s", tt.sel, got, tt.want)
		}
	}
	if _, err := buildRequest(cfg, "", requestOptions{Selection: selection{Hosts: []string{"nope"}}}); err == nil || !strings.Contains(err.Error(), "no --hosts match for nope") {
		t.Errorf("unmatched host error = %v", err)
	}
}

func TestBuildRequest_ErrorPages(t *testing.T) {
	cfg := loadTestProject(t, twoRoles+"error_pages_path: public/errors\n", map[string]string{"REGISTRY_PASSWORD": "rp", "DB_PASSWORD": "dbp"})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "public", "errors"), 0o755)
	os.WriteFile(filepath.Join(dir, "public", "errors", "404.html"), []byte("not here"), 0o644)
	os.WriteFile(filepath.Join(dir, "public", "errors", "502.html"), []byte("bad gateway"), 0o644)
	os.WriteFile(filepath.Join(dir, "public", "errors", "robots.txt"), []byte("x"), 0o644)
	req, err := buildRequest(cfg, dir, requestOptions{Command: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range req.GetRoles()[0].GetProxy().GetFiles() {
		got = append(got, f.GetPath()+"="+string(f.GetContent()))
	}
	want := "[app/error_pages/v1/404.html=not here app/error_pages/v1/502.html=bad gateway]"
	if fmt.Sprint(got) != want {
		t.Errorf("proxy files = %v, want %s", got, want)
	}
	if flags := strings.Join(req.GetRoles()[0].GetProxy().GetFlags(), " "); !strings.Contains(flags, `--error-pages="/home/kamal-proxy/.apps-config/app/error_pages/v1"`) {
		t.Errorf("proxy flags = %s, want --error-pages", flags)
	}
}

// TestBootLimit_GroupsCountAllHosts: a percentage boot.limit counts every
// host of every role and accessory (Kamal's all_hosts), whatever --hosts
// selects, takes the integer part of the percentage and is at least 1; the
// scheduler then slices the app hosts, primary role first, into groups.
func TestBootLimit_GroupsCountAllHosts(t *testing.T) {
	const yml = `
service: app
image: team/app
servers:
  web:
    - web-1
    - web-2
    - web-3
  job:
    hosts:
      - job-1
    cmd: bin/jobs
registry:
  server: localhost:5555
  username: u
  password:
    - REGISTRY_PASSWORD
builder:
  arch: amd64
accessories:
  db:
    image: postgres:16
    hosts:
      - db-1
      - db-2
      - db-3
      - db-4
boot:
  limit: %s
`
	tests := []struct {
		limit string
		sel   selection
		want  string
	}{
		// 8 hosts in all (4 app, 4 accessory).
		{"2", selection{}, "[[web-1 web-2] [web-3 job-1]]"},
		{`"25%"`, selection{}, "[[web-1 web-2] [web-3 job-1]]"},   // 8*25/100 = 2
		{`"37.9%"`, selection{}, "[[web-1 web-2] [web-3 job-1]]"}, // to_i: 8*37/100 = 2
		{`"50%"`, selection{}, "[[web-1 web-2 web-3 job-1]]"},
		{`"10%"`, selection{}, "[[web-1] [web-2] [web-3] [job-1]]"}, // at least 1
		// --hosts narrows the hosts, not the count: still 8*25/100 = 2.
		{`"25%"`, selection{Hosts: []string{"web-*"}}, "[[web-1 web-2] [web-3]]"},
	}
	for _, tt := range tests {
		cfg := loadTestProject(t, fmt.Sprintf(yml, tt.limit), map[string]string{"REGISTRY_PASSWORD": "rp"})
		req, err := buildRequest(cfg, "", requestOptions{Command: "deploy", Selection: tt.sel})
		if err != nil {
			t.Fatalf("limit %s: %v", tt.limit, err)
		}
		plan, err := scheduler.Plan(req, connectedFleet(scheduler.AllHosts(req)))
		if err != nil {
			t.Fatalf("limit %s: Plan: %v", tt.limit, err)
		}
		var groups [][]string
		for _, ph := range plan.GetPhases() {
			if strings.HasPrefix(ph.GetName(), "boot ") {
				groups = append(groups, ph.GetGroupHosts())
			}
		}
		if got := fmt.Sprint(groups); got != tt.want {
			t.Errorf("limit %s, hosts %v: boot groups = %s, want %s", tt.limit, tt.sel.Hosts, got, tt.want)
		}
	}
}

func connectedFleet(hosts []string) scheduler.FleetMap {
	m := scheduler.FleetMap{}
	for _, h := range hosts {
		m[h] = scheduler.AgentConnected
	}
	return m
}
