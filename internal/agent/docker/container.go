package docker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/docker/docker/client"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/proxy"
	"github.com/kctl-dev/kctl/internal/shellwords"
	"github.com/kctl-dev/kctl/internal/spec"
)

// Flags returns the docker-run flags a container spec stands for, as the
// engine receives them: spec.RunFlags, the one list Kamal's rendered
// `docker run` line (spec.DockerRunArgs) is also made of, so the agent runs
// exactly what the corpus tests compare with Kamal. Secret env is not
// included (Kamal passes it through --env-file; Translate adds it).
func Flags(c *specv1.Container) []Flag {
	rf := spec.RunFlags(c)
	fl := make([]Flag, len(rf))
	for i, f := range rf {
		fl[i] = Flag{Name: f.Name, Value: f.Value}
	}
	return fl
}

// ParseRunArgs parses a rendered `docker run` argument list (as Kamal
// renders it, shell quoting included) into flags, the image and the command.
// It accepts the list with or without the leading "docker", "run".
func ParseRunArgs(args []string) (flags []Flag, image string, cmd []string, err error) {
	if len(args) >= 2 && args[0] == "docker" && args[1] == "run" {
		args = args[2:]
	}
	for i := 0; i < len(args); i++ {
		a, err := proxy.ShellUnquote(args[i])
		if err != nil {
			return nil, "", nil, err
		}
		if !strings.HasPrefix(a, "-") {
			image = a
			for _, c := range args[i+1:] {
				words, err := shellwords.Split(c)
				if err != nil {
					return nil, "", nil, err
				}
				cmd = append(cmd, words...)
			}
			return flags, image, cmd, nil
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasVal {
			if IsBooleanOption(name) || !KnownOption(name) && i+1 >= len(args) {
				val = "true"
			} else {
				i++
				if i >= len(args) {
					return nil, "", nil, fmt.Errorf("flag --%s needs a value", name)
				}
				if val, err = proxy.ShellUnquote(args[i]); err != nil {
					return nil, "", nil, err
				}
			}
		}
		flags = append(flags, Flag{name, val})
	}
	return flags, image, cmd, nil
}

// Translate turns a container spec into Engine API structures. It fails,
// before anything is created, on an unknown or invalid option.
func (r *Runtime) Translate(c *specv1.Container) (*Spec, error) {
	if c.GetName() == "" || c.GetImage() == "" {
		return nil, fmt.Errorf("%w: container needs a name and an image", ErrBadOperation)
	}
	s, err := Apply(Flags(c))
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.GetName(), err)
	}
	s.Config.Image = c.GetImage()
	for _, kv := range c.GetSecretEnv() {
		s.Config.Env = append(s.Config.Env, kv.GetKey()+"="+kv.GetValue())
	}
	if c.GetCmd() != "" {
		words, err := shellwords.Split(c.GetCmd())
		if err != nil {
			return nil, fmt.Errorf("container %s: cmd: %w", c.GetName(), err)
		}
		s.Config.Cmd = words
	}
	for _, a := range c.GetArgs() {
		words, err := shellwords.Split(a)
		if err != nil {
			return nil, fmt.Errorf("container %s: args: %w", c.GetName(), err)
		}
		s.Config.Cmd = append(s.Config.Cmd, words...)
	}
	r.localize(s)
	return s, nil
}

// localize makes a translated container this agent's: Kamal's `$PWD/…`
// host paths become the data dir's, and the agent and spec-hash labels are
// added.
func (r *Runtime) localize(s *Spec) {
	for i, b := range s.Host.Binds {
		s.Host.Binds[i] = r.hostPath(b)
	}
	for i := range s.Host.Mounts {
		if s.Host.Mounts[i].Type == "bind" {
			s.Host.Mounts[i].Source = r.hostPath(s.Host.Mounts[i].Source)
		}
	}
	if r.cfg.AgentName != "" {
		s.Config.Labels[LabelAgent] = r.cfg.AgentName
	}
	s.Config.Labels[LabelSpec] = r.specHash(s)
}

// hostPath maps Kamal's `$PWD/…` (the SSH home) to the agent's data dir.
func (r *Runtime) hostPath(p string) string {
	for _, pre := range []string{"$PWD/", "${PWD}/"} {
		if strings.HasPrefix(p, pre) {
			return filepath.Join(r.cfg.DataDir, strings.TrimPrefix(p, pre))
		}
	}
	return p
}

// specHash is an HMAC (keyed per agent, so secrets cannot be guessed from
// the label) over everything that defines the container.
func (r *Runtime) specHash(s *Spec) string {
	saved := s.Config.Labels[LabelSpec]
	delete(s.Config.Labels, LabelSpec)
	b, _ := json.Marshal([]any{s.Name, s.Config, s.Host, s.Network})
	if saved != "" {
		s.Config.Labels[LabelSpec] = saved
	}
	m := hmac.New(sha256.New, r.secret)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// writeEnvFile writes the secret env as Kamal's 0600 role env file, under
// the data dir (`.kamal/apps/<svc>/env/roles/<role>.env`).
func (r *Runtime) writeEnvFile(c *specv1.Container) error {
	if c.GetEnvFile() == "" {
		return nil
	}
	var b strings.Builder
	for _, kv := range c.GetSecretEnv() {
		b.WriteString(kv.GetKey())
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(kv.GetValue(), "\n", `\n`))
		b.WriteByte('\n')
	}
	path := filepath.Join(r.cfg.DataDir, filepath.Clean("/"+c.GetEnvFile()))
	return writeDataFile(path, []byte(b.String()), 0o600)
}

// create creates the container of a spec under its engine name.
func (r *Runtime) create(ctx context.Context, s *Spec) (string, error) {
	return r.createNamed(ctx, s, r.engineName(s.Name))
}

// createNamed creates the container under exactly this engine name.
func (r *Runtime) createNamed(ctx context.Context, s *Spec, engine string) (string, error) {
	resp, err := r.cli.ContainerCreate(ctx, s.Config, s.Host, s.Network, nil, engine)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", s.Name, err)
	}
	return resp.ID, nil
}

func isNotFound(err error) bool { return client.IsErrNotFound(err) }
