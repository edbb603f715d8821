package proxy_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/agent/proxy"
)

type recorder struct {
	container string
	cmd       []string
	res       proxy.ExecResult
}

func (r *recorder) Exec(_ context.Context, c string, cmd []string) (proxy.ExecResult, error) {
	r.container, r.cmd = c, cmd
	return r.res, nil
}

var _ proxy.Execer = (*recorder)(nil)

// Kamal's tested command (test/commands/app_test.rb), after the shell has
// removed the quoting.
func TestDeploy_KamalArguments(t *testing.T) {
	rec := &recorder{}
	d := &proxy.Driver{Exec: rec}
	flags := []string{`--host="example.com"`, `--tls`, `--deploy-timeout="30s"`, `--drain-timeout="30s"`,
		`--buffer-requests`, `--buffer-responses`, `--log-request-header="Cache-Control"`,
		`--log-request-header="Last-Modified"`, `--log-request-header="User-Agent"`}
	if err := d.Deploy(context.Background(), "app-web", "172.1.0.2:80", flags); err != nil {
		t.Fatal(err)
	}
	want := []string{"kamal-proxy", "deploy", "app-web", "--target=172.1.0.2:80", "--host=example.com", "--tls",
		"--deploy-timeout=30s", "--drain-timeout=30s", "--buffer-requests", "--buffer-responses",
		"--log-request-header=Cache-Control", "--log-request-header=Last-Modified", "--log-request-header=User-Agent"}
	if rec.container != "kamal-proxy" || !reflect.DeepEqual(rec.cmd, want) {
		t.Errorf("Deploy ran %s %q, want kamal-proxy %q", rec.container, rec.cmd, want)
	}
}

func TestStopResumeRemove_Arguments(t *testing.T) {
	rec := &recorder{}
	d := &proxy.Driver{Exec: rec, Container: "p2"}
	ctx := context.Background()
	for _, tc := range []struct {
		run  func() error
		want []string
	}{
		{func() error { return d.Stop(ctx, "app-web", 30*time.Second, "Back at 5") }, []string{"kamal-proxy", "stop", "app-web", "--drain-timeout=30s", "--message=Back at 5"}},
		{func() error { return d.Stop(ctx, "app-web", 0, "") }, []string{"kamal-proxy", "stop", "app-web"}},
		{func() error { return d.Resume(ctx, "app-web") }, []string{"kamal-proxy", "resume", "app-web"}},
		{func() error { return d.Remove(ctx, "app-web") }, []string{"kamal-proxy", "remove", "app-web"}},
	} {
		if err := tc.run(); err != nil {
			t.Fatal(err)
		}
		if rec.container != "p2" || !reflect.DeepEqual(rec.cmd, tc.want) {
			t.Errorf("ran %s %q, want p2 %q", rec.container, rec.cmd, tc.want)
		}
	}
}

func TestErrors_Classified(t *testing.T) {
	for _, tc := range []struct {
		stderr string
		want   error
	}{
		{"Error: target failed to become healthy within configured timeout (30s)\n", proxy.ErrHealthTimeout},
		{"Error: host settings conflict with another service\n", proxy.ErrHostConflict},
		{"Error: service not found\n", proxy.ErrServiceNotFound},
		{"Error: unknown flag: --frob\n", proxy.ErrCommand},
	} {
		d := &proxy.Driver{Exec: &recorder{res: proxy.ExecResult{ExitCode: 1, Stderr: tc.stderr}}}
		err := d.Remove(context.Background(), "x")
		if !errors.Is(err, tc.want) {
			t.Errorf("stderr %q: error %v, want %v", tc.stderr, err, tc.want)
		}
	}
}

// TestErrors_HealthTimeoutSaidOnce: the proxy's own message names the
// cause; the error says it once, with the timeout.
func TestErrors_HealthTimeoutSaidOnce(t *testing.T) {
	d := &proxy.Driver{Exec: &recorder{res: proxy.ExecResult{ExitCode: 1,
		Stderr: "Error: target failed to become healthy within configured timeout (10s)\n"}}}
	err := d.Remove(context.Background(), "x")
	if n := strings.Count(err.Error(), "failed to become healthy"); n != 1 || !strings.Contains(err.Error(), "within configured timeout (10s)") {
		t.Errorf("error = %q, want the cause once, with the timeout", err)
	}
}

func TestShellUnquote(t *testing.T) {
	for in, want := range map[string]string{
		`--host="a.com"`:             "--host=a.com",
		`--message="say \"hi\" \$x"`: `--message=say "hi" $x`,
		`'single quoted'`:            "single quoted",
		`bare\ word`:                 "bare word",
		`--path-prefix="/api"`:       "--path-prefix=/api",
	} {
		got, err := proxy.ShellUnquote(in)
		if err != nil || got != want {
			t.Errorf("ShellUnquote(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := proxy.ShellUnquote(`"open`); err == nil {
		t.Error(`ShellUnquote("open) = nil error, want unterminated quote`)
	}
}
