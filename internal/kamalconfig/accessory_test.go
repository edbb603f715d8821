package kamalconfig

import (
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/spec"
)

// Kamal's accessory command cases (test/commands/accessory_test.rb).
func TestAccessoryCommands(t *testing.T) {
	yml := `service: app
image: dhh/app
registry: {server: private.registry, username: dhh, password: secret}
servers: [1.1.1.1]
builder: {arch: amd64}
accessories:
  mysql:
    image: private.registry/mysql:8.0
    host: 1.1.1.5
    port: "3306"
    env:
      clear: {MYSQL_ROOT_HOST: "%"}
      secret: [MYSQL_ROOT_PASSWORD]
  redis:
    image: redis:latest
    host: 1.1.1.6
    port: "6379:6379"
    labels: {cache: "true"}
    env: {SOMETHING: else}
    volumes: [/var/lib/redis:/data]
  busybox:
    service: custom-busybox
    image: busybox:latest
    host: 1.1.1.7
    proxy: {host: busybox.example.com}
`
	load := func(extra string) *Config {
		t.Helper()
		dir := writeProject(t, map[string]string{"config/deploy.yml": yml + extra})
		cfg, err := Load(Options{Dir: dir, Version: "999", Env: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := load("")
	for name, want := range map[string]string{
		"mysql":   `docker run --name app-mysql --detach --restart unless-stopped --network kamal --log-opt max-size="10m" --publish 3306:3306 --env MYSQL_ROOT_HOST="%" --env-file .kamal/apps/app/env/accessories/mysql.env --label service="app-mysql" private.registry/mysql:8.0`,
		"redis":   `docker run --name app-redis --detach --restart unless-stopped --network kamal --log-opt max-size="10m" --publish 6379:6379 --env SOMETHING="else" --env-file .kamal/apps/app/env/accessories/redis.env --volume /var/lib/redis:/data --label service="app-redis" --label cache="true" redis:latest`,
		"busybox": `docker run --name custom-busybox --detach --restart unless-stopped --network kamal --log-opt max-size="10m" --env-file .kamal/apps/app/env/accessories/busybox.env --label service="custom-busybox" busybox:latest`,
	} {
		if got := strings.Join(spec.DockerRunArgs(cfg.AccessoryContainer(name, "")), " "); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	if got := strings.Join(spec.ProxyDeployArgs(cfg.AccessoryProxyDeploy("busybox"), "172.1.0.2"), " "); got != `docker exec kamal-proxy kamal-proxy deploy custom-busybox --target="172.1.0.2:80" --host="busybox.example.com" --deploy-timeout="30s" --drain-timeout="30s" --buffer-requests --buffer-responses --log-request-header="Cache-Control" --log-request-header="Last-Modified" --log-request-header="User-Agent"` {
		t.Errorf("accessory deploy: %s", got)
	}
	logged := load("logging: {driver: local, options: {max-size: 100m, max-file: \"3\"}}\n")
	if got := strings.Join(spec.DockerRunArgs(logged.AccessoryContainer("busybox", "")), " "); got != `docker run --name custom-busybox --detach --restart unless-stopped --network kamal --log-driver "local" --log-opt max-size="100m" --log-opt max-file="3" --env-file .kamal/apps/app/env/accessories/busybox.env --label service="custom-busybox" busybox:latest` {
		t.Errorf("logging: %s", got)
	}
	withHost := strings.Join(spec.DockerRunArgs(cfg.AccessoryContainer("mysql", "1.1.1.5")), " ")
	if !strings.Contains(withHost, `--publish 3306:3306 --env KAMAL_HOST="1.1.1.5" --env MYSQL_ROOT_HOST="%"`) {
		t.Errorf("KAMAL_HOST: %s", withHost)
	}
	if hosts := cfg.ProxyHosts(); len(hosts) != 2 || hosts[1] != "1.1.1.7" {
		t.Errorf("proxy hosts include proxied accessories: %v", hosts)
	}
}
