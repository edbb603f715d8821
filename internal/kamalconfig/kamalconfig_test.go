package kamalconfig

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/spec"
)

func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const baseYML = `service: app
image: dhh/app
servers:
  web:
    - 1.1.1.1
registry:
  username: dhh
  password: [KAMAL_REGISTRY_PASSWORD]
builder:
  arch: amd64
`

func TestDestinationOverlayAndDockerRun(t *testing.T) {
	dir := writeProject(t, map[string]string{
		"config/deploy.yml":         baseYML + "env:\n  clear:\n    A: \"1\"\n  secret: [S1]\n",
		"config/deploy.staging.yml": "env:\n  clear:\n    B: 'two words'\n",
	})
	cfg, err := Load(Options{Dir: dir, Destination: "staging", Version: "999", Env: map[string]string{}, HostnameSuffix: func() string { return "0123456789ab" }})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(spec.DockerRunArgs(cfg.AppContainer("web", "1.1.1.1")), " ")
	want := `docker run --detach --restart unless-stopped --name app-web-staging-999 --network kamal --hostname 1.1.1.1-0123456789ab --env KAMAL_CONTAINER_NAME="app-web-staging-999" --env KAMAL_VERSION="999" --env KAMAL_HOST="1.1.1.1" --env KAMAL_DESTINATION="staging" --env A="1" --env B="two words" --env-file .kamal/apps/app-staging/env/roles/web.env --log-opt max-size="10m" --label service="app" --label role="web" --label destination="staging" dhh/app:999`
	if got != want {
		t.Errorf("docker run:\n got %s\nwant %s", got, want)
	}
	if keys := cfg.EnvSecretKeys(cfg.Role("web")); !reflect.DeepEqual(keys, []string{"S1"}) {
		t.Errorf("secret keys: %v", keys)
	}
}

func TestHostnameTruncation(t *testing.T) {
	dir := writeProject(t, map[string]string{"config/deploy.yml": baseYML})
	cfg, err := Load(Options{Dir: dir, Version: "1", Env: map[string]string{}, HostnameSuffix: func() string { return "abcdefabcdef" }})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("h", 60)
	if got := cfg.Hostname(long); got != strings.Repeat("h", 51)+"-abcdefabcdef" {
		t.Errorf("hostname: %s", got)
	}
}

func TestValidationMessagesWithPositions(t *testing.T) {
	cases := []struct{ yml, msg, pos string }{
		{baseYML + "traefik:\n  args: {}\n", "unknown key: traefik", "config/deploy.yml:11:1"},
		{strings.Replace(baseYML, "  web:\n    - 1.1.1.1", "  web:", 1), "servers/web: should be an array or a hash", "config/deploy.yml:4:3"},
		{baseYML + "retain_containers: 0\n", "Must retain at least 1 container", "config/deploy.yml:11:20"},
		{baseYML + "minimum_version: 99.0.0\n", "Current version is 2.12.0, minimum required is 99.0.0", ""},
		{baseYML + "servers2: x\n", "unknown key: servers2", ""},
		{strings.Replace(baseYML, "  web:\n    - 1.1.1.1", "  web:\n    hosts: [1.1.1.1]\n    labels:\n      role: x", 1), "servers/web/labels/role: invalid label. destination, role, and service are reserved labels", "config/deploy.yml:7:7"},
		{baseYML + "proxy:\n  ssl: true\n", "proxy: Must set a host to enable automatic SSL", ""},
		{baseYML + "primary_role: jobs\n", "The primary_role jobs isn't defined", ""},
		{baseYML + "accessories:\n  db:\n    image: mysql\n", "accessories/db: specify one of `host`, `hosts`, `role`, `roles`, `tag` or `tags`", ""},
		{baseYML + "env:\n  tags: {}\n  clear: {A: [1]}\n", "env/clear/A: should be a string", ""},
		{baseYML + "require_destination: true\n", "You must specify a destination", ""},
	}
	for _, c := range cases {
		dir := writeProject(t, map[string]string{"config/deploy.yml": c.yml})
		_, err := Load(Options{Dir: dir, Version: "1", Env: map[string]string{}})
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: want a refusal, got %v", c.msg, err)
			continue
		}
		if e.Msg != c.msg {
			t.Errorf("message:\n got %q\nwant %q", e.Msg, c.msg)
		}
		if c.pos != "" && e.Pos.String() != c.pos {
			t.Errorf("%q position: got %s, want %s", c.msg, e.Pos, c.pos)
		}
	}
}

func TestKamal1KeysNameReplacements(t *testing.T) {
	dir := writeProject(t, map[string]string{"config/deploy.yml": baseYML + "healthcheck:\n  path: /up\ntraefik: {}\n"})
	_, err := Load(Options{Dir: dir, Version: "1", Env: map[string]string{}})
	if err == nil || !strings.Contains(err.Error(), "unknown keys: healthcheck, traefik") || !strings.Contains(err.Error(), "proxy/healthcheck instead of healthcheck") || !strings.Contains(err.Error(), "proxy instead of traefik") {
		t.Fatalf("got %v", err)
	}
}

func TestRubyRenderedPositions(t *testing.T) {
	if _, err := exec.LookPath("ruby"); err != nil {
		if os.Getenv("KCTL_E2E") == "1" || os.Getenv("CI") != "" {
			t.Fatal("ruby is required (apt-get install ruby)")
		}
		t.Skip("ruby not installed")
	}
	yml := "<% hosts = %w[a b].map(&:upcase) %>\n" + baseYML + "bogus: <%= hosts.join(',') %>\n"
	dir := writeProject(t, map[string]string{"config/deploy.yml": yml})
	_, err := Load(Options{Dir: dir, Version: "1", Env: map[string]string{}})
	var e *Error
	if !errors.As(err, &e) || e.Msg != "unknown key: bogus" || e.Pos.String() != "config/deploy.yml:12:1" {
		t.Fatalf("got %v", err)
	}
}

func TestEnvFileAndVersion(t *testing.T) {
	dir := writeProject(t, map[string]string{"config/deploy.yml": baseYML + "env:\n  secret: [DB_URL, KEY:OTHER_KEY]\n"})
	sec := SecretFunc(func(n string) (string, error) {
		if n == "MISSING" {
			return "", errors.New("Secret 'MISSING' not found")
		}
		return "v-" + n, nil
	})
	cfg, err := Load(Options{Dir: dir, Version: "1", Env: map[string]string{}, Secrets: sec})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.EnvFile("web", "1.1.1.1")
	if err != nil || got != "DB_URL=v-DB_URL\nKEY=v-OTHER_KEY\n" {
		t.Errorf("env file %q %v", got, err)
	}
	if n := cfg.WithVersion("v0").AppContainer("web", "1.1.1.1").GetName(); n != "app-web-v0" {
		t.Errorf("WithVersion name: %s", n)
	}
	if cfg.Version != "1" {
		t.Error("WithVersion changed the original")
	}
}

func TestAccessoryFiles(t *testing.T) {
	dir := writeProject(t, map[string]string{
		"config/deploy.yml": baseYML + "accessories:\n  db:\n    image: mysql\n    host: 1.1.1.1\n    env:\n      clear: {PORT: 3306}\n      secret: [PW]\n    files:\n      - config/my.cnf.erb:/etc/mysql/my.cnf\n      - {local: config/plain.txt, remote: /etc/plain.txt, mode: '0600'}\n",
		"config/my.cnf.erb": "port=<%= ENV['PORT'] %> pw=<%= ENV['PW'] %>\n",
		"config/plain.txt":  "plain\n",
	})
	cfg, err := Load(Options{Dir: dir, Version: "1", Env: map[string]string{}, Secrets: SecretFunc(func(n string) (string, error) { return "s-" + n, nil })})
	if err != nil {
		t.Fatal(err)
	}
	files, err := cfg.AccessoryFiles("db")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || string(files[0].Content) != "port=3306 pw=s-PW\n" || files[0].Path != "app-db/etc/mysql/my.cnf" || files[0].Mode != 0o755 {
		t.Errorf("erb file: %+v", files[0])
	}
	if string(files[1].Content) != "plain\n" || files[1].Mode != 0o600 {
		t.Errorf("plain file: %+v", files[1])
	}
}

func TestRoleRestartStopTimeoutAndProxyRun(t *testing.T) {
	yml := strings.Replace(baseYML, "  web:\n    - 1.1.1.1", "  web:\n    hosts: [1.1.1.1]\n    options:\n      restart: on-failure:3\n      cap-add: true\n    stop_timeout: 12\n  jobs:\n    hosts: [1.1.1.2]\n    logging:\n      options: {max-file: \"3\"}", 1) +
		"logging:\n  driver: local\n  options: {max-size: 100m}\nproxy:\n  host: a.example.com\n  run:\n    metrics_port: 9190\n    debug: true\n    registry: registry:4443\n"
	dir := writeProject(t, map[string]string{"config/deploy.yml": yml})
	cfg, err := Load(Options{Dir: dir, Version: "7", Env: map[string]string{}, HostnameSuffix: func() string { return "x" }})
	if err != nil {
		t.Fatal(err)
	}
	run := strings.Join(spec.DockerRunArgs(cfg.AppContainer("web", "1.1.1.1")), " ")
	if !strings.Contains(run, "--restart on-failure:3 ") || strings.Contains(run, `--restart "on-failure`) || !strings.Contains(run, "--cap-add dhh/app:7") {
		t.Errorf("restart/options: %s", run)
	}
	if !strings.Contains(run, `--log-driver "local" --log-opt max-size="100m"`) {
		t.Errorf("logging: %s", run)
	}
	jobs := strings.Join(spec.DockerRunArgs(cfg.AppContainer("jobs", "1.1.1.2")), " ")
	if !strings.Contains(jobs, `--log-driver "local" --log-opt max-size="100m" --log-opt max-file="3"`) {
		t.Errorf("role logging merge: %s", jobs)
	}
	if got := strings.Join(spec.StopArgs("app-web-6", cfg.StopPolicy("web")), " "); !strings.HasSuffix(got, "docker stop -t 12") {
		t.Errorf("stop: %s", got)
	}
	if got := strings.Join(spec.StopArgs("app-jobs-6", cfg.StopPolicy("jobs")), " "); !strings.HasSuffix(got, "docker stop -t 30") {
		t.Errorf("stop jobs: %s", got)
	}
	boot := strings.Join(spec.ProxyBootArgs(cfg.ProxyBoot("1.1.1.1")), " ")
	want := `docker run --name kamal-proxy --network kamal --detach --restart unless-stopped --volume kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy --volume $PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config --publish 80:80 --publish 443:443 --log-opt max-size=10m --expose=9190 registry:4443/basecamp/kamal-proxy:v0.9.2 kamal-proxy run --debug --metrics-port "9190"`
	if boot != want {
		t.Errorf("proxy boot:\n got %s\nwant %s", boot, want)
	}
	if hosts := cfg.ProxyHosts(); !reflect.DeepEqual(hosts, []string{"1.1.1.1"}) {
		t.Errorf("proxy hosts: %v", hosts)
	}
}

func TestYAMLSyntaxErrorPosition(t *testing.T) {
	dir := writeProject(t, map[string]string{"config/deploy.yml": "service: a\nservers:\n  - a\n  b: c\n"})
	_, err := Load(Options{Dir: dir, Version: "1", Env: map[string]string{}})
	var e *Error
	if !errors.As(err, &e) || e.Pos.Line == 0 || !strings.HasPrefix(e.Msg, "YAML syntax error") {
		t.Fatalf("got %v", err)
	}
}

func TestBootLimit(t *testing.T) {
	yml := strings.Replace(baseYML, "    - 1.1.1.1", "    - 1.1.1.1\n    - 1.1.1.2\n    - 1.1.1.3\n    - 1.1.1.4\n    - 1.1.1.5", 1)
	for limit, want := range map[string]int{"": 0, "boot:\n  limit: 2\n": 2, "boot:\n  limit: \"50%\"\n": 2, "boot:\n  limit: 10%\n": 1} {
		dir := writeProject(t, map[string]string{"config/deploy.yml": yml + limit})
		cfg, err := Load(Options{Dir: dir, Version: "1", Env: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.BootLimit(); got != want {
			t.Errorf("%q: got %d, want %d", limit, got, want)
		}
	}
}

// Kamal's "run with tags": host tags pull env from env.tags.
func TestHostTagsEnv(t *testing.T) {
	yml := "service: app\nimage: dhh/app\nregistry: {username: dhh, password: secret}\nbuilder: {arch: amd64}\nservers: [{1.1.1.1: tag1}, 1.1.1.2]\nenv:\n  secret: [RAILS_MASTER_KEY]\n  tags:\n    tag1: {ENV1: value1}\n"
	dir := writeProject(t, map[string]string{"config/deploy.yml": yml})
	cfg, err := Load(Options{Dir: dir, Version: "999", Env: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	tagged := strings.Join(spec.DockerRunArgs(cfg.AppContainer("web", "1.1.1.1")), " ")
	if !strings.Contains(tagged, `--env KAMAL_HOST="1.1.1.1" --env ENV1="value1" --env-file .kamal/apps/app/env/roles/web.env`) {
		t.Errorf("tagged host: %s", tagged)
	}
	plain := strings.Join(spec.DockerRunArgs(cfg.AppContainer("web", "1.1.1.2")), " ")
	if strings.Contains(plain, "ENV1") {
		t.Errorf("untagged host got tag env: %s", plain)
	}
}
