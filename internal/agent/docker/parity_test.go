package docker_test

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/kamalconfig"
	"github.com/kctl-dev/kctl/internal/kamalconfig/kamalcorpus"
)

// invalidForDocker lists the corpus's docker run lines (file and what)
// whose values Docker itself refuses: the agent must refuse them too, both
// from Kamal's line and from the spec. Any other refusal fails the test, and
// so does a listed line that translates.
var invalidForDocker = map[string]string{
	// ENV["DEV_PORT"] was set to "env-DEV_PORT" when the corpus was made,
	// so the port is not a number: docker run refuses the --publish.
	"013-animina-dating__animina/config/deploy.yml.dev.expected.json role web":  "--publish env-DEV_PORT:4000",
	"013-animina-dating__animina/config/deploy.yml.expected.json role web":      "--publish env-PROD_PORT:4000",
	"013-animina-dating__animina/config/deploy.yml.prod.expected.json role web": "--publish env-PROD_PORT:4000",
}

// corpusConfig loads a corpus case as Kamal did (ruby for ERB beyond the Go
// subset, secrets resolved to secret-NAME).
func corpusConfig(t *testing.T, tc kamalcorpus.Case) *kamalconfig.Config {
	t.Helper()
	stub := kamalcorpus.ShellStub
	cfg, err := kamalconfig.Load(kamalconfig.Options{
		Dir: tc.Dir, ConfigFile: tc.ConfigFile, Destination: tc.Destination, Version: tc.Version, Env: tc.Env,
		Secrets: kamalconfig.SecretFunc(kamalcorpus.Secret), ShellStub: &stub, Ruby: os.Getenv("KCTL_TEST_RUBY"),
	})
	if err != nil {
		t.Fatalf("Kamal accepts this configuration; kctl refused: %v", err)
	}
	return cfg
}

// runSpec is the container spec kctl derives for one of Kamal's lines.
func runSpec(cfg *kamalconfig.Config, run kamalcorpus.DockerRun) *specv1.Container {
	switch run.Kind {
	case "role":
		r := cfg.Role(run.Name)
		if r == nil || len(r.Hosts) == 0 {
			return nil
		}
		c := cfg.AppContainer(run.Name, r.Hosts[0])
		c.Hostname = "HOST" // as in the corpus
		return c
	case "accessory":
		return cfg.AccessoryContainer(run.Name, "")
	case "proxy":
		return cfg.ProxyBoot(run.Name).GetContainer()
	}
	return nil
}

// TestTranslate_CorpusParity: for every docker run line of every corpus
// case Kamal accepts, the Engine API structures the agent creates from
// kctl's spec (Translate) are exactly those of Kamal's rendered line
// translated the same way (ParseRunArgs, Apply, the agent's path mapping),
// field by field, volume binds and mounts included. The only difference
// allowed is the secret env: Kamal passes it in the --env-file, the agent
// in the API call (appended after the clear env).
func TestTranslate_CorpusParity(t *testing.T) {
	rt, err := docker.New(docker.Config{DataDir: t.TempDir(), AgentName: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	lines := 0
	for _, tc := range kamalcorpus.Cases(t) {
		if tc.Error != "" {
			continue
		}
		t.Run(tc.Rel, func(t *testing.T) {
			cfg := corpusConfig(t, tc)
			for _, run := range tc.DockerRuns() {
				what := tc.Rel + " " + run.Kind + " " + run.Name
				seen[what] = true
				lines++
				c := runSpec(cfg, run)
				if c == nil {
					t.Errorf("%s: kctl derives no container", what)
					continue
				}
				checkParity(t, rt, what, c, run.Args)
			}
		})
	}
	for what := range invalidForDocker {
		if !seen[what] {
			t.Errorf("invalidForDocker lists %q, which the corpus no longer has", what)
		}
	}
	t.Logf("%d docker run lines compared", lines)
}

func checkParity(t *testing.T, rt *docker.Runtime, what string, c *specv1.Container, kamalLine []string) {
	t.Helper()
	fromKamal, kerr := rt.TranslateRunArgs(kamalLine)
	fromSpec, serr := rt.Translate(c)
	if reason, ok := invalidForDocker[what]; ok {
		if !errors.Is(kerr, docker.ErrBadOption) || !errors.Is(serr, docker.ErrBadOption) {
			t.Errorf("%s: listed as invalid for Docker (%s), but Kamal's line gives %v and the spec %v", what, reason, kerr, serr)
		}
		return
	}
	if kerr != nil || serr != nil {
		t.Errorf("%s: Kamal's line: %v; kctl's spec: %v", what, kerr, serr)
		return
	}
	for _, kv := range c.GetSecretEnv() {
		fromKamal.Config.Env = append(fromKamal.Config.Env, kv.GetKey()+"="+kv.GetValue())
	}
	// The spec hash covers the secret env; it is compared through the
	// fields it hashes.
	delete(fromKamal.Config.Labels, docker.LabelSpec)
	delete(fromSpec.Config.Labels, docker.LabelSpec)
	for _, part := range []struct {
		name      string
		got, want any
	}{
		{"name", fromSpec.Name, fromKamal.Name},
		{"env file", fromSpec.EnvFile, fromKamal.EnvFile},
		{"config", fromSpec.Config, fromKamal.Config},
		{"host config", fromSpec.Host, fromKamal.Host},
		{"networking", fromSpec.Network, fromKamal.Network},
	} {
		if !reflect.DeepEqual(part.got, part.want) {
			g, _ := json.Marshal(part.got)
			w, _ := json.Marshal(part.want)
			t.Errorf("%s: %s from kctl's spec differs from Kamal's line:\n got %s\nwant %s", what, part.name, g, w)
		}
	}
}
