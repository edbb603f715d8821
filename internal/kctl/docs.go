package kctl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// configDocs is the reference for each deploy.yml section, as kctl reads it
// (Kamal 2.12 semantics).
var configDocs = map[string]string{
	"configuration": `# deploy.yml (root)
service: myapp            # required; [a-z0-9_-]+, container name prefix and service label
image: user/myapp         # required; repository is <registry.server>/<image>
labels: {key: value}      # extra container labels
volumes: [host:container[:opts]]
registry: ...             # kctl docs registry
servers: ...              # kctl docs servers (array = role "web", or hash of roles)
env: ...                  # kctl docs env
asset_path: /rails/public/assets  # asset bridging for proxy roles
hooks_path: .kamal/hooks
hooks_output: quiet|verbose (or per hook)
secrets_path: .kamal/secrets
error_pages_path: public  # 4xx.html / 5xx.html served by kamal-proxy
require_destination: false
primary_role: web
allow_empty_roles: false
retain_containers: 5
minimum_version: 2.0.0    # checked against kctl's Kamal compatibility (2.12.0)
readiness_delay: 7        # seconds, non-proxy roles without a healthcheck
deploy_timeout: 30
drain_timeout: 30
stop_timeout: (proxy roles: Docker's default; others: drain_timeout)
ssh / sshkit / builder / accessories / proxy / boot / logging / aliases / output: see their sections
x-anything: allowed at the root for YAML anchors
Destinations: -d staging also loads config/deploy.staging.yml; hashes deep-merge, arrays and scalars replace.
ERB: files are rendered as Ruby ERB (trim mode "-"); ENV["X"], ENV.fetch, File.read(...).strip, if/else and
comments are rendered by kctl itself, anything else with the local ruby (ruby -rerb).`,
	"servers": `# servers
servers:                  # an array of hosts is the "web" role
  web:
    - 172.0.0.1
    - 172.0.0.2: [tag1, tag2]   # host tags select env.tags and accessory tag placement
  workers:
    hosts: [172.0.0.3]
    cmd: bin/jobs
    options: {memory: 2g, restart: on-failure}   # docker run flags; restart sets --restart
    labels: {my-label: x}   # service, role and destination are reserved
    env: {clear: {A: b}, secret: [S]}   # merged over the root env (no tags here)
    logging: {driver: json-file, options: {max-size: 100m}}
    proxy: true             # non-primary roles run behind the proxy only when set
    stop_timeout: 10
    asset_path: /public
With kctl, hosts are agent names or the addresses agents report.`,
	"env": `# env
env:
  clear: {KEY: value}       # --env KEY="value"
  secret: [NAME, NAME:SECRET_NAME]   # from .kamal/secrets; NAME:ALIAS reads secret ALIAS
  tags:                     # root only
    tag1: {clear: {A: b}}
Simple form: env: {KEY: value} (all clear). Host env = root, role, then each host tag; clear keys
merge (later wins), secret lists are unioned.`,
	"registry": `# registry
registry:
  server: ghcr.io           # default Docker Hub; localhost:PORT = local registry
  username: my-user         # a literal or [SECRET_NAME]
  password: [KAMAL_REGISTRY_PASSWORD]
Both credentials are required unless server starts with localhost.`,
	"proxy": `# proxy (kamal-proxy deploy options, root or per role)
proxy:
  host: app.example.com     # or hosts: [a, b]; not both
  app_port: 80
  ssl: true                 # or {certificate_pem: SECRET, private_key_pem: SECRET}
  ssl_redirect: true
  forward_headers: false
  response_timeout: 30
  path_prefix: /api         # or path_prefixes
  strip_path_prefix: true
  healthcheck: {path: /up, interval: 1, timeout: 5}
  buffering: {requests: true, responses: true, memory: 1000000, max_request_body: 0, max_response_body: 0}
  logging: {request_headers: [Cache-Control], response_headers: [X-Request-ID]}
  run: {http_port: 80, https_port: 443, metrics_port: 9000, debug: false, log_max_size: 10m,
        publish: true, bind_ips: [0.0.0.0], registry: r, repository: basecamp/kamal-proxy,
        version: v0.9.2, options: {}}
Automatic SSL needs a host and a single server per role. All roles on a host must agree on run.`,
	"accessory": `# accessories.<name>
accessories:
  db:
    service: myapp-db        # default <service>-<name>
    image: mysql:8.0
    registry: {server: r, username: u, password: [S]}
    host: agent-1            # exactly one of host, hosts, role, roles, tag, tags
    port: "127.0.0.1:3306:3306"
    cmd: mysqld
    labels: {a: b}
    options: {cpus: 2}
    env: {clear: {A: b}, secret: [MYSQL_ROOT_PASSWORD]}
    files: [config/my.cnf:/etc/mysql/my.cnf]
    directories: [data:/var/lib/mysql]
    volumes: [/logs:/var/log/mysql]
    network: kamal
    proxy: {host: db.example.com}`,
	"builder": `# builder
builder:
  arch: amd64                # required; or [amd64, arm64]
  remote: ssh://docker@builder
  local: true
  pack: {builder: heroku/builder:24, buildpacks: [heroku/ruby]}
  cache: {type: gha|registry, options: mode=max, image: cache-image}
  context: .
  dockerfile: Dockerfile
  target: production
  args: {KEY: value}
  secrets: [GITHUB_TOKEN]
  ssh: default
  driver: docker-container
  provenance: mode=max
  sbom: true`,
	"boot": `# boot
boot:
  limit: 10                  # or "25%" of all hosts
  wait: 2                    # seconds between groups
  parallel_roles: false`,
	"logging": `# logging (root or per role)
logging:
  driver: json-file
  options: {max-size: 100m}
Default: --log-opt max-size="10m".`,
	"ssh": `# ssh
kctl does not use SSH: agents dial out to the controllers. The section is accepted for Kamal
compatibility (user, port, proxy, proxy_command, log_level, keys_only, keys, key_data, config,
forward_agent) and ignored.`,
	"sshkit": `# sshkit
Accepted for compatibility (max_concurrent_starts, pool_idle_timeout, dns_retries) and ignored.`,
	"alias": `# aliases
aliases:
  console: app exec -i --reuse "bin/rails console"
Names match [a-z0-9_-]+ and must not shadow built-in commands.`,
	"output": `# output
output:
  otel: {endpoint: "http://otel:4318"}
  file: {path: log/kamal}`,
}

func newDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "docs [SECTION]",
		Short: "Show the deploy.yml reference for a section",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names := make([]string, 0, len(configDocs))
			for k := range configDocs {
				names = append(names, k)
			}
			sort.Strings(names)
			if len(args) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), configDocs["configuration"])
				fmt.Fprintf(cmd.OutOrStdout(), "\nSections: %s\n", strings.Join(names, ", "))
				return nil
			}
			name := strings.TrimSuffix(args[0], "s")
			for _, k := range []string{args[0], name, name + "s"} {
				if d, ok := configDocs[k]; ok {
					fmt.Fprintln(cmd.OutOrStdout(), d)
					return nil
				}
			}
			if args[0] == "role" || args[0] == "roles" {
				fmt.Fprintln(cmd.OutOrStdout(), configDocs["servers"])
				return nil
			}
			return fmt.Errorf("kctl: unknown docs section %q (sections: %s)", args[0], strings.Join(names, ", "))
		},
	}
}
