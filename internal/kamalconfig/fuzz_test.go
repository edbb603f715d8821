package kamalconfig

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/kamalconfig/erb"
	"github.com/kctl-dev/kctl/internal/kamalconfig/kamalcorpus"
	"github.com/kctl-dev/kctl/internal/secrets"
	"github.com/kctl-dev/kctl/internal/shellwords"
	"github.com/kctl-dev/kctl/internal/spec"
)

// fuzzDest is the destination of the overlay FuzzLoad writes.
const fuzzDest = "fz"

// stubRunner answers every command of a secrets file without running it:
// fuzzed input must never reach a shell.
type stubRunner struct{}

func (stubRunner) Run(context.Context, []string, string, ...string) ([]byte, error) {
	return []byte("cmd-output"), nil
}
func (stubRunner) LookPath(name string) (string, error) { return "/usr/bin/" + name, nil }

var _ secrets.Runner = stubRunner{}

// readOr is the file's content, or "" when it cannot be read.
func readOr(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// FuzzLoad loads a fuzzed project through Load as kctl does: config/deploy.yml
// (base), config/deploy.fz.yml (a destination overlay, when not empty),
// .kamal/secrets-common read by the secrets store (commands stubbed), and an
// environment, given as env-file text, that the templates see (also written
// as .env for Dotenv.load). ERB renders with the Go subset only. It is seeded
// with every corpus case. Properties:
//   - a refusal is a *Error with Kamal's message (which names the key path)
//     and the file, with the position where known, of the offending key;
//   - an accepted configuration derives, for every role, accessory and
//     proxy host, a container whose `docker run` line renders, parses back
//     (ParseRunArgs) and translates (Apply) to exactly what the agent
//     translates from the spec itself (docker.Flags); a translation may only
//     fail on a user's docker option, the same way from both.
func FuzzLoad(f *testing.F) {
	for _, tc := range kamalcorpus.Cases(f) {
		var overlay []byte
		if tc.Destination != "" {
			overlay = readOr(filepath.Join(tc.Dir, destinationFile(tc.ConfigFile, tc.Destination)))
		}
		var env strings.Builder
		for k, v := range tc.Env {
			env.WriteString(k + "=" + v + "\n")
		}
		f.Add(readOr(filepath.Join(tc.Dir, tc.ConfigFile)), overlay, readOr(filepath.Join(tc.Dir, ".kamal", "secrets-common")), []byte(env.String()))
	}
	f.Add([]byte(baseYML+"proxy:\n  host: a.com\n  ssl: true\naccessories:\n  db:\n    image: x\n    roles: [web]\n    port: 3306\n    files: [a:/b]\n    directories: [c:/d]\n"), []byte("servers: {web: [2.2.2.2]}\n"), []byte("KAMAL_REGISTRY_PASSWORD=$(op read x)\n"), []byte("X=x\n"))
	f.Fuzz(func(t *testing.T, base, overlay, secretsFile, envFile []byte) {
		dir := t.TempDir()
		write := func(name string, data []byte) {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("config/deploy.yml", base)
		write(".kamal/secrets-common", secretsFile)
		write(".env", envFile)
		opts := Options{Dir: dir, Version: "v1", ERB: erb.GoOnly, Ruby: "-", HostnameSuffix: func() string { return "000000000000" }}
		if len(overlay) > 0 {
			write(destinationFile("config/deploy.yml", fuzzDest), overlay)
			opts.Destination = fuzzDest
		}
		opts.Env = map[string]string{}
		for _, line := range strings.Split(string(envFile), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				opts.Env[k] = v
			}
		}
		opts.Secrets = secrets.New(secrets.Options{Dir: dir, Destination: opts.Destination, Env: opts.Env, Runner: stubRunner{}})
		cfg, err := Load(opts)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		for _, r := range cfg.Roles {
			if len(r.Hosts) > 0 {
				checkTranslates(t, "role "+r.Name, cfg.AppContainer(r.Name, r.Hosts[0]))
			}
		}
		for _, a := range cfg.Accessories {
			checkTranslates(t, "accessory "+a.Name, cfg.AccessoryContainer(a.Name, ""))
		}
		for _, h := range cfg.ProxyHosts() {
			if b := cfg.ProxyBoot(h); b.GetLegacy() {
				spec.ProxyBootArgs(b)
			} else {
				checkTranslates(t, "proxy "+h, b.GetContainer())
			}
		}
	})
}

// checkRefusal: a refusal is a *Error carrying Kamal's message and the file
// the problem is in.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("refusal is not a *kamalconfig.Error: %v", err)
	}
	if strings.TrimSpace(e.Msg) == "" {
		t.Fatalf("refusal without a message: %#v", e)
	}
	if e.Pos.File == "" {
		t.Fatalf("refusal names no file: %v", err)
	}
}

// checkTranslates: kctl's `docker run` line for c parses back and
// translates to exactly what the agent translates from c.
func checkTranslates(t *testing.T, what string, c *specv1.Container) {
	t.Helper()
	line := spec.DockerRunArgs(c)
	flags, image, cmd, err := docker.ParseRunArgs(line)
	if err != nil {
		t.Fatalf("%s: kctl's own docker run line does not parse: %v\n%q", what, err, line)
	}
	if image != c.GetImage() {
		t.Fatalf("%s: image %q parsed back as %q", what, c.GetImage(), image)
	}
	var wantCmd []string
	for _, s := range append([]string{c.GetCmd()}, c.GetArgs()...) {
		words, err := shellwords.Split(s)
		if err != nil {
			return // an unparseable cmd is refused by the agent before any flag
		}
		wantCmd = append(wantCmd, words...)
	}
	if len(cmd) != 0 || len(wantCmd) != 0 {
		if !reflect.DeepEqual(cmd, wantCmd) {
			t.Fatalf("%s: cmd %q parsed back as %q", what, wantCmd, cmd)
		}
	}
	fromSpec, serr := docker.Apply(docker.Flags(c))
	fromLine, lerr := docker.Apply(flags)
	for _, sentinel := range []error{docker.ErrUnknownOption, docker.ErrBadOption} {
		if errors.Is(serr, sentinel) != errors.Is(lerr, sentinel) {
			t.Fatalf("%s: the spec translates with %v, its docker run line with %v", what, serr, lerr)
		}
	}
	if serr != nil {
		if !errors.Is(serr, docker.ErrUnknownOption) && !errors.Is(serr, docker.ErrBadOption) {
			t.Fatalf("%s: translation failed outside the user's options: %v", what, serr)
		}
		return
	}
	if !reflect.DeepEqual(fromSpec, fromLine) {
		t.Fatalf("%s: the spec and its docker run line translate differently:\nspec %+v %+v\nline %+v %+v\n%q", what, fromSpec.Config, fromSpec.Host, fromLine.Config, fromLine.Host, line)
	}
}
