package kamalconfig

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

// The examples below play the role of Kamal's configuration/docs/*.yml: the
// validator compares the user's configuration with them key by key and type
// by type. "..." marks a section validated on its own.

const exampleRoot = `
service: myapp
image: my-image
labels: {my-label: my-value}
volumes: [/path/on/host:/path/in/container:ro]
registry: ...
servers: ...
env: ...
asset_path: /path/to/assets
hooks_path: .kamal/hooks
hooks_output: quiet
secrets_path: .kamal/secrets
error_pages_path: public
require_destination: true
primary_role: workers
allow_empty_roles: false
retain_containers: 3
minimum_version: "1.3.0"
readiness_delay: 4
deploy_timeout: 10
drain_timeout: 10
stop_timeout: 10
run_directory: /etc/kamal
ssh: ...
builder: ...
accessories: ...
proxy: ...
sshkit: ...
boot: ...
logging: ...
aliases: ...
output: ...
`

const exampleRole = `
hosts: [172.1.0.3]
cmd: bin/jobs
stop_timeout: 10
options: {memory: 2g}
logging: ...
proxy: ...
labels: {my-label: workers}
env: ...
asset_path: /public
`

const exampleProxy = `
host: foo.example.com
hosts: [foo.example.com]
app_port: 3000
ssl: ...
ssl_redirect: false
forward_headers: true
response_timeout: 10
path_prefix: /api
path_prefixes: [/api]
strip_path_prefix: false
healthcheck: {interval: 3, path: /health, timeout: 3}
buffering: {requests: true, responses: true, max_request_body: 40000000, max_response_body: 0, memory: 2000000}
logging: {request_headers: [Cache-Control], response_headers: [X-Request-ID]}
run: {http_port: 80, https_port: 443, metrics_port: 9000, debug: true, log_max_size: 10m, publish: true, bind_ips: [0.0.0.0], registry: registry:4443, repository: basecamp/kamal-proxy, version: v0.9.2, options: {cpus: 1}}
`

const exampleAccessory = `
service: mysql
image: mysql:8.0
registry: ...
host: mysql-db1
hosts: [mysql-db1]
role: mysql
roles: [mysql]
tag: writer
tags: [writer]
cmd: bin/mysqld
port: "127.0.0.1:3306:3306"
labels: {app: myapp}
options: {cpus: 2}
env: ...
files: [config/my.cnf:/etc/mysql/my.cnf]
directories: [mysql-data:/var/lib/mysql]
volumes: [/path/to/mysql-logs:/var/log/mysql]
network: custom
proxy: ...
`

const exampleBuilder = `
arch: [amd64]
remote: ssh://docker@docker-builder
local: true
pack: {builder: heroku/builder:24, buildpacks: [heroku/ruby]}
cache: {type: registry, options: mode=max, image: kamal-app-build-cache}
context: .
dockerfile: Dockerfile.xyz
target: production
args: {ENVIRONMENT: production}
secrets: [GITHUB_TOKEN]
ssh: default=$SSH_AUTH_SOCK
driver: docker-container
provenance: mode=max
sbom: true
`

const exampleRegistry = `
server: registry.digitalocean.com
username: [DOCKER_REGISTRY_TOKEN]
password: [DOCKER_REGISTRY_TOKEN]
`

const exampleSSH = `
user: app
port: "2222"
proxy: root@proxy-host
proxy_command: "aws ssm start-session --target %h"
log_level: debug
keys_only: false
keys: [~/.ssh/id.pem]
key_data: [SSH_PRIVATE_KEY]
config: [~/.ssh/myconfig]
forward_agent: true
`

const exampleSSHKit = `
max_concurrent_starts: 10
pool_idle_timeout: 300
dns_retries: 3
`

const exampleBoot = `
limit: 10
wait: 2
parallel_roles: true
`

const exampleLogging = `
driver: awslogs
options: {awslogs-region: us-east-2}
`

const exampleOutput = `
otel: {endpoint: "http://otel:4318"}
file: {path: log/kamal}
`

var (
	examplesOnce sync.Once
	examples     map[string]*yaml11.Value
)

func example(name string) *yaml11.Value {
	examplesOnce.Do(func() {
		examples = map[string]*yaml11.Value{}
		for n, src := range map[string]string{
			"root": exampleRoot, "role": exampleRole, "proxy": exampleProxy, "accessory": exampleAccessory,
			"builder": exampleBuilder, "registry": exampleRegistry, "ssh": exampleSSH, "sshkit": exampleSSHKit,
			"boot": exampleBoot, "logging": exampleLogging, "output": exampleOutput,
		} {
			v, err := parseYAML("(example)", []byte(src), nil)
			if err != nil {
				panic("kamalconfig: bad example " + n + ": " + err.Error())
			}
			examples[n] = v
		}
	})
	return examples[name]
}

// vtype is one of the Ruby classes the validator checks for.
type vtype int

const (
	tHash vtype = iota
	tArray
	tString
	tInteger
	tFloat
	tBool
	tNil
)

func typeOf(v *yaml11.Value) vtype {
	if v == nil {
		return tNil
	}
	switch v.Kind {
	case yaml11.KindMap:
		return tHash
	case yaml11.KindSeq:
		return tArray
	case yaml11.KindInt:
		return tInteger
	case yaml11.KindFloat:
		return tFloat
	case yaml11.KindBool:
		return tBool
	case yaml11.KindNull:
		return tNil
	}
	return tString
}

func typeDesc(t vtype) string {
	switch t {
	case tInteger:
		return "an integer"
	case tArray:
		return "an array"
	case tBool:
		return "a boolean"
	case tHash:
		return "a hash"
	case tFloat:
		return "a float"
	case tNil:
		return "a nilclass"
	}
	return "a string"
}

func validType(v *yaml11.Value, t vtype) bool {
	if typeOf(v) == t {
		return true
	}
	if t == tString && v.Stringish() {
		return true
	}
	return false
}

// validator walks a configuration value against an example.
type validator struct {
	ctx      string
	allowExt bool
	kamal1   bool // the root holds Kamal 1 keys: add hints
}

type valError = *Error

func (vd *validator) errAt(v *yaml11.Value, msg string) *Error {
	m := msg
	if vd.ctx != "" {
		m = vd.ctx + ": " + msg
	}
	var pos yaml11.Pos
	if v != nil {
		pos = v.Pos
	}
	return cfgErr(pos, "%s", m)
}

func (vd *validator) with(key string, fn func() error) error {
	old := vd.ctx
	if key != "" {
		if vd.ctx == "" {
			vd.ctx = key
		} else {
			vd.ctx = vd.ctx + "/" + key
		}
	}
	err := fn()
	vd.ctx = old
	return err
}

func (vd *validator) typeErr(v *yaml11.Value, types ...vtype) error {
	seen := map[string]bool{}
	var descs []string
	for _, t := range types {
		d := typeDesc(t)
		if !seen[d] {
			seen[d] = true
			descs = append(descs, d)
		}
	}
	return vd.errAt(v, "should be "+strings.Join(descs, " or "))
}

func (vd *validator) validateType(v *yaml11.Value, types ...vtype) error {
	for _, t := range types {
		if validType(v, t) {
			return nil
		}
	}
	return vd.typeErr(v, types...)
}

func isExtension(k string) bool { return strings.HasPrefix(k, "x-") }

// kamal1Replacements names the Kamal 2 replacement of each Kamal 1 key.
var kamal1Replacements = map[string]string{
	"traefik":        "proxy",
	"healthcheck":    "proxy/healthcheck",
	"multiarch":      "builder/arch",
	"stop_wait_time": "drain_timeout",
}

func (vd *validator) checkUnknownKeys(cfg, ex *yaml11.Value) error {
	var unknown []string
	var first *yaml11.Value
	for _, k := range cfg.Keys {
		if _, ok := ex.Map[k]; ok {
			continue
		}
		if vd.allowExt && isExtension(k) {
			continue
		}
		if first == nil {
			p := cfg.KeyPos[k]
			first = &yaml11.Value{Pos: p}
		}
		unknown = append(unknown, k)
	}
	if len(unknown) == 0 {
		return nil
	}
	word := "key"
	if len(unknown) > 1 {
		word = "keys"
	}
	e := vd.errAt(first, "unknown "+word+": "+strings.Join(unknown, ", "))
	var hints []string
	for _, k := range unknown {
		if r, ok := kamal1Replacements[k]; ok {
			hints = append(hints, r+" instead of "+k)
		}
	}
	if len(hints) > 0 {
		e.Hint = "this is Kamal 1 configuration: Kamal 2 uses " + strings.Join(hints, ", ")
	}
	return e
}

func (vd *validator) againstExample(cfg, ex *yaml11.Value) error {
	if err := vd.validateType(cfg, typeOf(ex)); err != nil {
		return err
	}
	if ex.Kind != yaml11.KindMap {
		return nil
	}
	if err := vd.checkUnknownKeys(cfg, ex); err != nil {
		return err
	}
	for _, key := range cfg.Keys {
		if isExtension(key) {
			continue
		}
		value := cfg.Map[key]
		exv := ex.Map[key]
		err := vd.with(key, func() error {
			switch {
			case exv.Kind == yaml11.KindString && exv.Str == "...":
				if key == "proxy" && value != nil && value.Kind == yaml11.KindBool {
					return nil
				}
				if key == "servers" {
					return vd.validateType(value, tArray, tHash)
				}
				if key == "ssl" {
					return vd.validateType(value, tBool, tHash)
				}
				return vd.validateType(value, tHash)
			case key == "hooks_output":
				if value != nil && value.Kind == yaml11.KindMap {
					return vd.hashOf(value, tString)
				}
				return vd.validateType(value, tString)
			case key == "limit" && strings.HasSuffix(vd.ctx, "boot/limit"):
				return vd.validateType(value, tInteger, tString)
			case key == "hosts":
				return vd.servers(value)
			case exv.Kind == yaml11.KindSeq:
				switch key {
				case "arch":
					return vd.arrayOfOrType(value, typeOf(exv.Seq[0]))
				case "config":
					return vd.sshConfig(value)
				case "files", "directories":
					return vd.paths(value)
				}
				return vd.arrayOf(value, typeOf(exv.Seq[0]))
			case exv.Kind == yaml11.KindMap:
				switch key {
				case "options", "args":
					return vd.validateType(value, tHash)
				case "labels":
					return vd.hashOf(value, typeOf(exv.Map[exv.Keys[0]]))
				}
				return vd.againstExample(value, exv)
			}
			return vd.validateType(value, typeOf(exv))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (vd *validator) arrayOfOrType(v *yaml11.Value, t vtype) error {
	var err error
	if v != nil && v.Kind == yaml11.KindSeq {
		err = vd.arrayOf(v, t)
	} else {
		err = vd.validateType(v, t)
	}
	if err != nil {
		return vd.typeErr(v, tArray, t)
	}
	return nil
}

func (vd *validator) arrayOf(v *yaml11.Value, t vtype) error {
	if err := vd.validateType(v, tArray); err != nil {
		return err
	}
	for i, e := range v.Seq {
		if err := vd.with(itoa(i), func() error { return vd.validateType(e, t) }); err != nil {
			return err
		}
	}
	return nil
}

func (vd *validator) hashOf(v *yaml11.Value, t vtype) error {
	if err := vd.validateType(v, tHash); err != nil {
		return err
	}
	for _, k := range v.Keys {
		e := v.Map[k]
		if err := vd.with(k, func() error { return vd.validateType(e, t) }); err != nil {
			return err
		}
	}
	return nil
}

func (vd *validator) servers(v *yaml11.Value) error {
	if err := vd.validateType(v, tArray); err != nil {
		return err
	}
	for i, s := range v.Seq {
		err := vd.with(itoa(i), func() error {
			if err := vd.validateType(s, tString, tHash); err != nil {
				return err
			}
			if s.Kind == yaml11.KindMap {
				if len(s.Keys) != 1 {
					return vd.errAt(s, "multiple hosts found")
				}
				host := s.Keys[0]
				tags := s.Map[host]
				return vd.with(host, func() error {
					if err := vd.validateType(tags, tString, tArray); err != nil {
						return err
					}
					if tags.Kind == yaml11.KindSeq {
						return vd.arrayOf(tags, tString)
					}
					return nil
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (vd *validator) sshConfig(v *yaml11.Value) error {
	if v != nil && v.Kind == yaml11.KindSeq {
		return vd.arrayOf(v, tString)
	}
	if v != nil && (v.Kind == yaml11.KindBool || v.Kind == yaml11.KindString) {
		return nil
	}
	return vd.typeErr(v, tBool, tString, tArray)
}

func (vd *validator) paths(v *yaml11.Value) error {
	if err := vd.validateType(v, tArray); err != nil {
		return err
	}
	for i, p := range v.Seq {
		err := vd.with(itoa(i), func() error {
			if err := vd.validateType(p, tString, tHash); err != nil {
				return err
			}
			if p.Kind == yaml11.KindMap {
				for _, k := range []string{"local", "remote", "mode", "owner", "options"} {
					if !p.Has(k) {
						continue
					}
					if err := vd.with(k, func() error { return vd.validateType(p.Map[k], tString) }); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (vd *validator) labels(labels *yaml11.Value) error {
	if labels.Blank() || labels.Kind != yaml11.KindMap {
		return nil
	}
	return vd.with("labels", func() error {
		for _, k := range labels.Keys {
			if k == "destination" || k == "role" || k == "service" {
				return vd.with(k, func() error {
					return vd.errAt(&yaml11.Value{Pos: labels.KeyPos[k]}, "invalid label. destination, role, and service are reserved labels")
				})
			}
		}
		return nil
	})
}

var restartPolicy = regexp.MustCompile(`^(?:no|always|unless-stopped|on-failure(?::[0-9]+)?)$`)

// dockerOptions is Kamal 2.12's Validator#validate_docker_options! for a
// role's or an accessory's options: a restart option (which becomes the
// container's --restart) must be a String naming a Docker restart policy.
// YAML 1.1 reads `restart: no` as false, which Kamal refuses the same way.
func (vd *validator) dockerOptions(opts *yaml11.Value) error {
	if opts == nil || opts.Kind != yaml11.KindMap || !opts.Has("restart") {
		return nil
	}
	r := opts.Map["restart"]
	return vd.with("options/restart", func() error {
		if r == nil || r.Kind != yaml11.KindString {
			return vd.errAt(&yaml11.Value{Pos: opts.KeyPos["restart"]}, `should be a string. Use "no" to disable restarts`)
		}
		if !restartPolicy.MatchString(r.Str) {
			return vd.errAt(r, "should be no, always, unless-stopped, on-failure, or on-failure:N")
		}
		return nil
	})
}

// env validates an env section (Kamal::Configuration::Validator::Env).
func (vd *validator) env(cfg *yaml11.Value) error {
	if cfg == nil || cfg.Kind != yaml11.KindMap {
		return vd.validateType(cfg, tHash)
	}
	special := map[string]bool{"clear": true, "secret": true, "tags": true}
	complex := false
	var unknown []string
	var firstUnknown *yaml11.Value
	for _, k := range cfg.Keys {
		if special[k] {
			complex = true
		} else {
			unknown = append(unknown, k)
			if firstUnknown == nil {
				firstUnknown = &yaml11.Value{Pos: cfg.KeyPos[k]}
			}
		}
	}
	if !complex {
		return vd.hashOf(cfg, tString)
	}
	if len(unknown) > 0 {
		word := "key"
		if len(unknown) > 1 {
			word = "keys"
		}
		return vd.errAt(firstUnknown, "unknown "+word+": "+strings.Join(unknown, ", "))
	}
	if cfg.Has("clear") {
		if err := vd.with("clear", func() error { return vd.hashOf(cfg.Map["clear"], tString) }); err != nil {
			return err
		}
	}
	if cfg.Has("secret") {
		if err := vd.with("secret", func() error { return vd.arrayOf(cfg.Map["secret"], tString) }); err != nil {
			return err
		}
	}
	if cfg.Has("tags") {
		if vd.ctx != "env" {
			return vd.errAt(&yaml11.Value{Pos: cfg.KeyPos["tags"]}, "tags are only allowed in the root env")
		}
		tags := cfg.Map["tags"]
		return vd.with("tags", func() error {
			if err := vd.validateType(tags, tHash); err != nil {
				return err
			}
			for _, t := range tags.Keys {
				tv := tags.Map[t]
				err := vd.with(t, func() error {
					if err := vd.validateType(tv, tHash); err != nil {
						return err
					}
					return vd.env(tv)
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	return nil
}

var localhostRegistry = regexp.MustCompile(`^localhost[:$]`)

func (vd *validator) registry(cfg *yaml11.Value) error {
	if cfg == nil || cfg.Kind != yaml11.KindMap {
		if err := vd.validateType(cfg, tHash); err != nil {
			return err
		}
	}
	ex := example("registry")
	stripped := yaml11.NewMap()
	for _, k := range cfg.Keys {
		if k != "username" && k != "password" {
			stripped.Set(k, cfg.Map[k], cfg.KeyPos[k])
		}
	}
	exs := yaml11.NewMap()
	exs.Set("server", ex.Map["server"], yaml11.Pos{})
	if err := vd.againstExample(stripped, exs); err != nil {
		return err
	}
	for _, k := range []string{"username", "password"} {
		err := vd.with(k, func() error {
			if s := cfg.Get("server"); s != nil && s.Kind == yaml11.KindString && localhostRegistry.MatchString(s.Str) {
				return nil
			}
			v := cfg.Get(k)
			at := v
			if at == nil {
				at = cfg
			}
			if v.Blank() {
				return vd.errAt(at, "is required")
			}
			if v.Kind == yaml11.KindString || (v.Kind == yaml11.KindSeq && len(v.Seq) == 1 && v.Seq[0].Kind == yaml11.KindString) {
				return nil
			}
			return vd.errAt(at, "should be a string or an array with one string (for secret lookup)")
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (vd *validator) proxy(cfg *yaml11.Value) error {
	if cfg == nil || cfg.Kind == yaml11.KindNull {
		return nil
	}
	if err := vd.againstExample(cfg, example("proxy")); err != nil {
		return err
	}
	if cfg.Get("host").Blank() && cfg.Get("hosts").Blank() && cfg.Get("ssl").Truthy() {
		return vd.errAt(cfg, "Must set a host to enable automatic SSL")
	}
	if cfg.Has("host") && cfg.Has("hosts") {
		return vd.errAt(cfg, "Specify one of 'host' or 'hosts', not both")
	}
	if ssl := cfg.Get("ssl"); ssl != nil && ssl.Kind == yaml11.KindMap {
		if ssl.Get("certificate_pem").Present() && ssl.Get("private_key_pem").Blank() {
			return vd.errAt(ssl, "Missing private_key_pem setting (required when certificate_pem is present)")
		}
		if ssl.Get("private_key_pem").Present() && ssl.Get("certificate_pem").Blank() {
			return vd.errAt(ssl, "Missing certificate_pem setting (required when private_key_pem is present)")
		}
	}
	if run := cfg.Get("run"); run != nil && run.Kind == yaml11.KindMap {
		if ips := run.Get("bind_ips"); ips != nil && ips.Kind == yaml11.KindSeq {
			for _, ip := range ips.Seq {
				s := strings.TrimSuffix(strings.TrimPrefix(ip.S(), "["), "]")
				if net.ParseIP(s) == nil {
					return vd.errAt(ip, "Invalid publish IP address: "+ip.S())
				}
			}
		}
		if run.Get("publish").IsFalse() && (run.Get("bind_ips").Present() || run.Get("http_port").Present() || run.Get("https_port").Present()) {
			return vd.errAt(run, "Cannot set http_port, https_port or bind_ips when publish is false")
		}
	}
	return nil
}

var reservedAliases = map[string]bool{
	"accessory": true, "app": true, "audit": true, "build": true, "config": true, "deploy": true, "details": true,
	"docs": true, "help": true, "init": true, "lock": true, "proxy": true, "prune": true, "redeploy": true,
	"registry": true, "remove": true, "rollback": true, "secrets": true, "server": true, "setup": true,
	"upgrade": true, "version": true,
}

var aliasName = regexp.MustCompile(`^[a-z0-9_-]+$`)

func itoa(i int) string { return strconv.Itoa(i) }
