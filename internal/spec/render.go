// Package spec renders the kctl.spec.v1 protos to the exact argument lists
// Kamal 2.12 runs (docker run, kamal-proxy deploy, docker stop, proxy boot),
// so a spec derived by internal/kamalconfig can be compared with Kamal's own
// commands and shown to operators.
package spec

import (
	"strconv"
	"strings"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

// EscapeShellValue is Kamal::Utils.escape_shell_value: each run of ASCII is
// dumped as a double-quoted Ruby string (with ` and bare $ escaped); runs of
// other characters are kept as they are.
func EscapeShellValue(s string) string {
	if s == "" {
		return `""`
	}
	var b strings.Builder
	i := 0
	for i < len(s) {
		j := i
		ascii := s[i] < 0x80
		for j < len(s) && (s[j] < 0x80) == ascii {
			j++
		}
		if ascii {
			b.WriteString(escapeASCII(s[i:j]))
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}

func escapeASCII(s string) string {
	d := rubyDumpBody(s)
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(d); i++ {
		switch c := d[i]; c {
		case '`':
			b.WriteString("\\`")
		case '$':
			// A $ not starting a complete ${...} is escaped.
			if k := strings.IndexByte(d[i:], '}'); i+1 < len(d) && d[i+1] == '{' && k > 0 {
				b.WriteByte('$')
			} else {
				b.WriteString(`\$`)
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// rubyDumpBody is Ruby's String#dump for ASCII text, without the quotes.
func rubyDumpBody(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '\f':
			b.WriteString(`\f`)
		case '\v':
			b.WriteString(`\v`)
		case '\b':
			b.WriteString(`\b`)
		case '\a':
			b.WriteString(`\a`)
		case 0x1b:
			b.WriteString(`\e`)
		case '#':
			if i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '$' || s[i+1] == '@') {
				b.WriteString(`\#`)
			} else {
				b.WriteByte('#')
			}
		default:
			if c < 0x20 || c == 0x7f {
				b.WriteString(`\x` + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
			} else {
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// EnvFile renders env pairs as Kamal's env file (Kamal::EnvFile): one
// KEY=value line each, values escaped for Docker's env-file reader (a lone
// newline when there is nothing to write).
func EnvFile(kvs []*specv1.KeyValue) string {
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(kv.GetKey())
		b.WriteByte('=')
		v := kv.GetValue()
		i := 0
		for i < len(v) {
			j := i
			ascii := v[i] < 0x80
			for j < len(v) && (v[j] < 0x80) == ascii {
				j++
			}
			if ascii {
				d := rubyDumpBody(v[i:j])
				d = strings.ReplaceAll(d, `\"`, `"`)
				d = strings.ReplaceAll(d, `\#`, "#")
				b.WriteString(d)
			} else {
				b.WriteString(v[i:j])
			}
			i = j
		}
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "\n"
	}
	return b.String()
}

func restart(c *specv1.Container) string {
	if c.GetRestart() == "" {
		return "unless-stopped"
	}
	return c.GetRestart()
}

func network(c *specv1.Container) string {
	if c.GetNetwork() == "" {
		return "kamal"
	}
	return c.GetNetwork()
}

// ProxyBootArgs renders how Kamal boots kamal-proxy: `docker run …` when
// deploy.yml has proxy.run, else the legacy form that reads the boot_config
// files (`echo $(cat .kamal/proxy/options || echo "…") … | xargs docker run …`).
func ProxyBootArgs(b *specv1.ProxyBoot) []string {
	c := b.GetContainer()
	if !b.GetLegacy() {
		return DockerRunArgs(c)
	}
	opts := legacyProxyOptions(c)
	image, version, _ := strings.Cut(c.GetImage(), ":")
	if i := strings.LastIndex(c.GetImage(), ":"); i >= 0 {
		image, version = c.GetImage()[:i], c.GetImage()[i+1:]
	}
	read := func(file, def string) string {
		return "$(cat .kamal/proxy/" + file + " 2> /dev/null || echo \"" + def + "\")"
	}
	echo := read("options", opts) + " " + read("image", image) + ":" + read("image_version", version) + " " + read("run_command", c.GetCmd())
	args := []string{"echo", echo, "|", "xargs", "docker", "run", "--name", c.GetName(), "--network", network(c), "--detach", "--restart", restart(c)}
	for _, v := range c.GetVolumes() {
		args = append(args, "--volume", v)
	}
	return args
}

// ProxyDeployArgs renders `docker exec kamal-proxy kamal-proxy deploy …` for
// target (a container ID or host), which gets the app port appended.
func ProxyDeployArgs(p *specv1.ProxyDeploy, target string) []string {
	if target == "" {
		target = p.GetTarget()
	}
	args := []string{"docker", "exec", "kamal-proxy", "kamal-proxy", "deploy", p.GetService(),
		"--target=" + EscapeShellValue(target+":"+strconv.FormatUint(uint64(p.GetAppPort()), 10))}
	return append(args, p.GetFlags()...)
}

// StopArgs renders how Kamal stops one version of a role's container:
// `docker container ls --all --filter 'name=^<name>$' --quiet | xargs docker stop [-t N]`.
func StopArgs(containerName string, p *specv1.StopPolicy) []string {
	args := []string{"docker", "container", "ls", "--all", "--filter", "'name=^" + containerName + "$'", "--quiet", "|", "xargs", "docker", "stop"}
	if p.GetHasTimeout() {
		args = append(args, "-t", strconv.FormatUint(uint64(p.GetTimeout()), 10))
	}
	return args
}

// AuthFor returns auth when image lives in auth's registry, else nil:
// credentials are never sent to another registry (the proxy image usually
// comes from Docker Hub, not the app's registry).
func AuthFor(image string, auth *specv1.RegistryAuth) *specv1.RegistryAuth {
	if auth == nil || auth.GetServer() == "" || !strings.HasPrefix(image, auth.GetServer()+"/") {
		return nil
	}
	return auth
}
