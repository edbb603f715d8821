package spec

import (
	"reflect"
	"testing"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

func TestEscapeShellValue(t *testing.T) {
	cases := map[string]string{
		"plain":        `"plain"`,
		"":             `""`,
		`a"b`:          `"a\"b"`,
		"$HOME":        `"\$HOME"`,
		"${HOME}":      `"${HOME}"`,
		"#{x}":         `"\#{x}"`,
		"`cmd`":        "\"\\`cmd\\`\"",
		"line\nbreak":  `"line\nbreak"`,
		"Alátùńwò AI":  `"Al"á"t"ùń"w"ò" AI"`,
		"back\\slash":  `"back\\slash"`,
		"tab\tand\x01": `"tab\tand\x01"`,
	}
	for in, want := range cases {
		if got := EscapeShellValue(in); got != want {
			t.Errorf("EscapeShellValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestAccessoryAndProxyShapes(t *testing.T) {
	acc := &specv1.Container{
		Kind: specv1.ContainerKind_CONTAINER_KIND_ACCESSORY, Name: "app-db", Image: "mysql:8",
		Logging: &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m"}}},
		Publish: []string{"3306:3306"}, Env: []*specv1.KeyValue{{Key: "A", Value: "1"}, {Key: "B", Value: "false", Raw: true}, {Key: "C", Bare: true}},
		EnvFile: ".kamal/apps/app/env/accessories/db.env", Volumes: []string{"$PWD/app-db/data:/var/lib/mysql"},
		Labels: []*specv1.KeyValue{{Key: "service", Value: "app-db"}}, Options: []*specv1.Option{{Name: "user", Value: "root"}, {Name: "privileged", Bare: true}},
		Cmd: "mysqld",
	}
	want := []string{"docker", "run", "--name", "app-db", "--detach", "--restart", "unless-stopped", "--network", "kamal",
		"--log-opt", `max-size="10m"`, "--publish", "3306:3306", "--env", `A="1"`, "--env", "B=false", "--env", "C",
		"--env-file", ".kamal/apps/app/env/accessories/db.env", "--volume", "$PWD/app-db/data:/var/lib/mysql",
		"--label", `service="app-db"`, "--user", `"root"`, "--privileged", "mysql:8", "mysqld"}
	if got := DockerRunArgs(acc); !reflect.DeepEqual(got, want) {
		t.Errorf("accessory:\n got %q\nwant %q", got, want)
	}
	pd := &specv1.ProxyDeploy{Service: "app-web", AppPort: 3000, Flags: []string{"--tls"}}
	if got := ProxyDeployArgs(pd, "abc"); !reflect.DeepEqual(got, []string{"docker", "exec", "kamal-proxy", "kamal-proxy", "deploy", "app-web", `--target="abc:3000"`, "--tls"}) {
		t.Errorf("proxy deploy: %q", got)
	}
	if got := StopArgs("app-web-1", &specv1.StopPolicy{Timeout: 30, HasTimeout: true}); got[len(got)-1] != "30" || got[5] != "'name=^app-web-1$'" {
		t.Errorf("stop: %q", got)
	}
	boot := &specv1.ProxyBoot{Container: &specv1.Container{
		Kind: specv1.ContainerKind_CONTAINER_KIND_PROXY, Name: "kamal-proxy", Image: "basecamp/kamal-proxy:v0.9.2",
		Volumes: []string{"kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy", "$PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config"},
		Publish: []string{"80:80", "443:443"}, Logging: &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m", Raw: true}}},
		Expose: []string{"9190"}, Cmd: `kamal-proxy run --metrics-port "9190"`,
	}}
	want = []string{"docker", "run", "--name", "kamal-proxy", "--network", "kamal", "--detach", "--restart", "unless-stopped",
		"--volume", "kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy", "--volume", "$PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config",
		"--publish 80:80 --publish 443:443", "--log-opt", "max-size=10m", "--expose=9190", "basecamp/kamal-proxy:v0.9.2", `kamal-proxy run --metrics-port "9190"`}
	if got := ProxyBootArgs(boot); !reflect.DeepEqual(got, want) {
		t.Errorf("proxy boot:\n got %q\nwant %q", got, want)
	}
	boot.Legacy = true
	got := ProxyBootArgs(boot)
	if got[1] != `$(cat .kamal/proxy/options 2> /dev/null || echo "--publish 80:80 --publish 443:443 --log-opt max-size=10m") $(cat .kamal/proxy/image 2> /dev/null || echo "basecamp/kamal-proxy"):$(cat .kamal/proxy/image_version 2> /dev/null || echo "v0.9.2") $(cat .kamal/proxy/run_command 2> /dev/null || echo "kamal-proxy run --metrics-port "9190"")` {
		t.Errorf("legacy echo: %s", got[1])
	}
}

func TestEnvFile(t *testing.T) {
	got := EnvFile([]*specv1.KeyValue{{Key: "A", Value: `say "hi" #{x} $HOME`}, {Key: "B", Value: "multi\nline"}, {Key: "C", Value: "ünï"}})
	want := "A=say \"hi\" #{x} $HOME\nB=multi\\nline\nC=ünï\n"
	if got != want {
		t.Errorf("env file:\n got %q\nwant %q", got, want)
	}
	if EnvFile(nil) != "\n" {
		t.Error("empty env file must be a newline")
	}
}

func TestWords(t *testing.T) {
	tests := []struct {
		flags []Flag
		want  []string
	}{
		{nil, nil},
		{[]Flag{{Name: "detach", Value: "true", Form: Bare}}, []string{"--detach"}},
		{[]Flag{{Name: "env", Value: "A=1", Arg: `A="1"`}}, []string{"--env", `A="1"`}},
		{[]Flag{{Name: "expose", Value: "9", Arg: "9", Form: Equals}}, []string{"--expose=9"}},
		{
			[]Flag{{Name: "publish", Arg: "80:80", Form: Joined}, {Name: "publish", Arg: "443:443", Form: Joined}, {Name: "volume", Arg: "v"}, {Name: "publish", Arg: "1:1", Form: Joined}},
			[]string{"--publish 80:80 --publish 443:443", "--volume", "v", "--publish 1:1"},
		},
	}
	for _, tt := range tests {
		if got := Words(tt.flags); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Words(%v) = %q, want %q", tt.flags, got, tt.want)
		}
	}
}

// The engine receives unquoted values, bare env as KEY=, and true for bare
// options; Kamal's line shows the quoted forms.
func TestRunFlagsValues(t *testing.T) {
	c := &specv1.Container{Name: "n", Image: "i", Env: []*specv1.KeyValue{{Key: "A", Value: "x y"}, {Key: "B", Bare: true}},
		Options: []*specv1.Option{{Name: "privileged", Bare: true}, {Name: "user", Value: "1:2"}}}
	var got [][2]string
	for _, f := range RunFlags(c) {
		got = append(got, [2]string{f.Name, f.Value})
	}
	want := [][2]string{{"detach", "true"}, {"name", "n"}, {"env", "A=x y"}, {"env", "B="}, {"privileged", "true"}, {"user", "1:2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RunFlags values = %q, want %q", got, want)
	}
	if got, want := DockerRunArgs(c), []string{"docker", "run", "--detach", "--restart", "unless-stopped", "--name", "n", "--network", "kamal", "--env", `A="x y"`, "--env", "B", "--privileged", "--user", `"1:2"`, "i"}; !reflect.DeepEqual(got, want) {
		t.Errorf("DockerRunArgs = %q, want %q", got, want)
	}
}
