package kctl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

const lifecycleYML = `
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
  password: pw
builder:
  arch: amd64
accessories:
  db:
    image: postgres:16
    host: db-1
    directories:
      - data:/var/lib/postgresql/data
aliases:
  console: app exec -i --reuse "bin/rails console"
  shell: app exec -i
`

// inProject runs the test in a directory holding deploy.yml.
func inProject(t *testing.T, yml string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "deploy.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
}

// plan runs `kctl <group> args` with the lifecycle request captured instead
// of sent, and renders it: a line per phase ("phase <name> [group hosts]")
// and per step ("  host role: action op"), then a line per desired state.
func plan(t *testing.T, target targetFlags, newGroup func(*globals) *cobra.Command, args ...string) string {
	t.Helper()
	var req *deployv1.Request
	g := &globals{target: target, planned: func(r *deployv1.Request) error { req = r; return nil }}
	cmd := newGroup(g)
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if req == nil {
		t.Fatalf("%v planned nothing", args)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "command %s\n", req.GetCommand())
	for _, ph := range req.GetLifecycle().GetPhases() {
		fmt.Fprintf(&b, "phase %s %v\n", ph.GetName(), ph.GetGroupHosts())
		for _, s := range ph.GetSteps() {
			fmt.Fprintf(&b, "  %s %s: %s %s\n", s.GetHost(), s.GetRole(), s.GetAction(), opName(s.GetOp()))
		}
	}
	for _, d := range req.GetLifecycle().GetDesired() {
		fmt.Fprintf(&b, "want %s/%s %s %q\n", d.GetRole(), d.GetHost(), strings.TrimPrefix(d.GetState().String(), "STATE_"), d.GetMessage())
	}
	return b.String()
}

// opName names an operation and the parts of it the tests check.
func opName(op *agentv1.Operation) string {
	switch o := op.GetOp().(type) {
	case *agentv1.Operation_AppControl:
		return "app " + strings.TrimPrefix(o.AppControl.GetAction().String(), "ACTION_")
	case *agentv1.Operation_ProxyControl:
		return fmt.Sprintf("proxy %s %s %q", strings.TrimPrefix(o.ProxyControl.GetAction().String(), "ACTION_"), o.ProxyControl.GetService(), o.ProxyControl.GetMessage())
	case *agentv1.Operation_AccessoryControl:
		return "accessory " + strings.TrimPrefix(o.AccessoryControl.GetAction().String(), "ACTION_") + " " + o.AccessoryControl.GetName()
	case *agentv1.Operation_BootAccessory:
		return "boot accessory " + o.BootAccessory.GetContainer().GetName()
	case *agentv1.Operation_BootProxy:
		return "boot proxy"
	case nil:
		return "none"
	}
	return fmt.Sprintf("%T", op.GetOp())
}

func TestPlanners(t *testing.T) {
	inProject(t, lifecycleYML)
	tests := []struct {
		name   string
		target targetFlags
		group  func(*globals) *cobra.Command
		args   []string
		want   string
	}{
		{"app maintenance: proxy roles only, with the message", targetFlags{}, newAppCmd, []string{"maintenance", "--message", "back soon"}, `command app maintenance
phase app maintenance []
  web-1 web: Maintenance mode proxy STOP app-web "back soon"
  web-2 web: Maintenance mode proxy STOP app-web "back soon"
want web/web-1 MAINTENANCE "back soon"
want web/web-2 MAINTENANCE "back soon"
`},
		{"app stop on a role", targetFlags{roles: []string{"job"}}, newAppCmd, []string{"stop"}, `command app stop
phase app stop []
  job-1 job: Stopped app app STOP
want job/job-1 STOPPED ""
`},
		{"app remove: containers, images, then the app directories", targetFlags{hosts: []string{"web-1", "job-1"}}, newAppCmd, []string{"remove"}, `command app remove
phase app remove containers []
  web-1 web: Removed all app containers app REMOVE
  job-1 job: Removed all app containers app REMOVE
phase app remove images []
  web-1 : Removed all app images *agentv1.Operation_Prune
  job-1 : Removed all app images *agentv1.Operation_Prune
phase app remove directories []
  web-1 : Removed .kamal/apps/app app REMOVE_DIRECTORY
  job-1 : Removed .kamal/apps/app app REMOVE_DIRECTORY
want web/web-1 REMOVED ""
want job/job-1 REMOVED ""
`},
		{"proxy reboot --rolling: a phase per host, each its hook group", targetFlags{}, newProxyCmd, []string{"reboot", "--rolling", "-y"}, `command proxy reboot
phase proxy reboot [web-1]
  web-1 : Rebooted proxy boot proxy
phase proxy reboot [web-2]
  web-2 : Rebooted proxy boot proxy
`},
		{"proxy reboot on one host", targetFlags{hosts: []string{"web-2"}}, newProxyCmd, []string{"reboot", "-y"}, `command proxy reboot
phase proxy reboot [web-2]
  web-2 : Rebooted proxy boot proxy
`},
		{"accessory reboot: the container only, then boot", targetFlags{}, newAccessoryCmd, []string{"reboot", "db"}, `command accessory reboot
phase accessory remove container []
  db-1 db: Removed accessory container accessory REMOVE_CONTAINER app-db
phase network []
  db-1 : ensure network *agentv1.Operation_EnsureNetwork
phase accessory boot []
  db-1 db: Booted accessory db boot accessory app-db
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plan(t, tt.target, tt.group, tt.args...); got != tt.want {
				t.Errorf("plan of %v =\n%s\nwant\n%s", tt.args, got, tt.want)
			}
		})
	}
}

// details prints the recorded desired state that is not running, one line
// per role and host, with the maintenance message and who set it.
func TestPrintDesired(t *testing.T) {
	at := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC).UnixMilli()
	var b strings.Builder
	printDesired(&b, []*deployv1.DesiredState{
		{Role: "web", Host: "h1", State: deployv1.DesiredState_STATE_MAINTENANCE, Message: "Back at noon", Command: "app maintenance", Operator: "alice", UpdatedUnixMillis: at},
		{Role: "web", Host: "h2", State: deployv1.DesiredState_STATE_RUNNING, Command: "app live", Operator: "alice", UpdatedUnixMillis: at},
		{Role: "job", Host: "h3", State: deployv1.DesiredState_STATE_STOPPED, Command: "app stop", Operator: "bob", UpdatedUnixMillis: at},
	})
	want := `Desired state:
  web on h1: maintenance "Back at noon" (app maintenance by alice at 2026-11-30T02:00:00Z)
  job on h3: stopped (app stop by bob at 2026-11-30T02:00:00Z)

`
	if b.String() != want {
		t.Errorf("printDesired =\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printDesired(&b, []*deployv1.DesiredState{{Role: "web", Host: "h1", State: deployv1.DesiredState_STATE_RUNNING}})
	if b.String() != "" {
		t.Errorf("printDesired of running only = %q, want nothing", b.String())
	}
}

// Every `proxy boot_config` subcommand says Kamal 2.12's deprecation line
// first, on stdout; set and reset then refuse (kctl keeps no boot config on
// the servers), get shows each proxy host's run options.
func TestProxyBootConfig_Deprecated(t *testing.T) {
	inProject(t, lifecycleYML)
	const line = "The proxy boot_config command is deprecated - set the config in the deploy YAML at proxy/run instead\n"
	for _, tt := range []struct {
		args    []string
		wantErr bool
	}{
		{[]string{"boot_config", "set", "--http-port", "8080", "--docker-options", "a=1", "--docker-options", "b=2"}, true},
		{[]string{"boot_config", "reset"}, true},
		{[]string{"boot_config", "get"}, false},
	} {
		var out bytes.Buffer
		cmd := newProxyCmd(&globals{})
		cmd.SetArgs(tt.args)
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.ExecuteContext(context.Background())
		if (err != nil) != tt.wantErr {
			t.Errorf("proxy %v = %v, want an error: %v", tt.args, err, tt.wantErr)
		}
		if !strings.HasPrefix(out.String(), line) {
			t.Errorf("proxy %v printed %q, want it to start with Kamal's deprecation line", tt.args, out.String())
		}
		if !tt.wantErr && !strings.Contains(out.String(), "\nHost web-1: --publish 80:80 --publish 443:443 --log-opt max-size=10m basecamp/kamal-proxy:v0.9.2\n") {
			t.Errorf("proxy %v printed %q, want each proxy host", tt.args, out.String())
		}
	}
}
