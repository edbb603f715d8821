package kamalconfig

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
	"github.com/kctl-dev/kctl/internal/spec"
)

// AccessoryContainer is the container Kamal runs for accessory name; with a
// non-empty host it also carries KAMAL_HOST as Kamal's boot does.
func (c *Config) AccessoryContainer(name, host string) *specv1.Container {
	a := c.Accessory(name)
	if a == nil {
		return nil
	}
	cfg := a.raw
	ct := &specv1.Container{
		Kind:       specv1.ContainerKind_CONTAINER_KIND_ACCESSORY,
		Name:       a.ServiceName,
		Image:      a.Image,
		Restart:    "unless-stopped",
		Network:    "kamal",
		Logging:    loggingSpec(c.Raw.Get("logging")),
		EnvFile:    path.Join(c.EnvDirectory(), "accessories", a.Name+".env"),
		SecretKeys: a.env.secrets,
		SecretEnv:  c.resolveSecrets(a.env.secrets),
		Service:    a.ServiceName,
		Host:       host,
	}
	if n := cfg.Get("network"); n != nil && n.Kind == yaml11.KindString {
		ct.Network = n.Str
	}
	if p := cfg.Get("port"); p != nil && !p.IsNull() {
		s := p.S()
		if !strings.Contains(s, ":") {
			s = s + ":" + s
		}
		ct.Publish = []string{s}
	}
	if host != "" {
		ct.Env = append(ct.Env, &specv1.KeyValue{Key: "KAMAL_HOST", Value: host})
	}
	ct.Env = append(ct.Env, argPairs(a.env.clearKeys, a.env.clear)...)
	if v := cfg.Get("volumes"); v != nil && v.Kind == yaml11.KindSeq {
		ct.Volumes = append(ct.Volumes, v.Strings()...)
	}
	a.addPaths(ct)
	ct.Labels = []*specv1.KeyValue{{Key: "service", Value: a.ServiceName}}
	if l := cfg.Get("labels"); l != nil && l.Kind == yaml11.KindMap {
		for _, kv := range argPairs(l.Keys, l.Map) {
			if kv.Key == "service" {
				ct.Labels[0] = kv
				continue
			}
			ct.Labels = append(ct.Labels, kv)
		}
	}
	ct.Restart, ct.Options = restartAndOptions(cfg.Get("options"))
	if cmd := cfg.Get("cmd"); cmd != nil && !cmd.IsNull() {
		ct.Cmd = cmd.S()
	}
	return ct
}

// accessoryPath is one entry of files: or directories:, as
// "local:remote[:options]" or a hash.
type accessoryPath struct{ local, remote, options, mode, owner string }

func parseAccessoryPath(v *yaml11.Value) accessoryPath {
	if v.Kind == yaml11.KindMap {
		return accessoryPath{v.Get("local").S(), v.Get("remote").S(), v.Get("options").S(), v.Get("mode").S(), v.Get("owner").S()}
	}
	parts := strings.SplitN(v.S(), ":", 3)
	p := accessoryPath{local: parts[0]}
	if len(parts) > 1 {
		p.remote = parts[1]
	}
	if len(parts) > 2 {
		p.options = parts[2]
	}
	return p
}

// dockerVolume is a --volume for hostPath, relative paths under $PWD.
func dockerVolume(hostPath, containerPath, options string) string {
	if !strings.HasPrefix(hostPath, "/") {
		hostPath = "$PWD/" + hostPath
	}
	s := hostPath + ":" + containerPath
	if options != "" {
		s += ":" + options
	}
	return s
}

// addPaths mounts the accessory's files (uploaded under <service>/<remote>)
// and directories (created under <service>/ unless absolute).
func (a *Accessory) addPaths(ct *specv1.Container) {
	if fs := a.raw.Get("files"); fs != nil && fs.Kind == yaml11.KindSeq {
		for _, f := range fs.Seq {
			p := parseAccessoryPath(f)
			ct.Volumes = append(ct.Volumes, dockerVolume(a.ServiceName+p.remote, p.remote, p.options))
			mode := uint32(0o755)
			if p.mode != "" {
				fmt.Sscanf(p.mode, "%o", &mode)
			}
			ct.Files = append(ct.Files, &specv1.File{Path: a.ServiceName + p.remote, Mode: mode, Owner: p.owner})
		}
	}
	if ds := a.raw.Get("directories"); ds != nil && ds.Kind == yaml11.KindSeq {
		for _, d := range ds.Seq {
			p := parseAccessoryPath(d)
			hp := p.local
			if !strings.HasPrefix(hp, "/") {
				hp = path.Join(a.ServiceName, hp)
			}
			ct.Volumes = append(ct.Volumes, dockerVolume(hp, p.remote, p.options))
			ct.Directories = append(ct.Directories, hp)
		}
	}
}

// AccessoryRegistryAuth resolves an accessory's own registry, or nil.
func (c *Config) AccessoryRegistryAuth(name string) (*specv1.RegistryAuth, error) {
	a := c.Accessory(name)
	if a == nil || a.Registry == nil {
		return nil, nil
	}
	return c.registryAuth(*a.Registry)
}

// AccessoryEnvFile is the accessory's env file (resolved secrets).
func (c *Config) AccessoryEnvFile(name string) (string, error) {
	a := c.Accessory(name)
	if a == nil {
		return "", fmt.Errorf("%w: unknown accessory %s", ErrConfig, name)
	}
	if c.opts.Secrets == nil {
		return "", fmt.Errorf("%w: no secrets resolver", ErrConfig)
	}
	kvs, err := c.secretPairs(a.env.secrets, true)
	if err != nil {
		return "", err
	}
	return spec.EnvFile(kvs), nil
}

// readAccessoryFile reads an accessory's local file, rendering .erb files
// with the accessory's env loaded, as Kamal does at boot.
func (c *Config) readAccessoryFile(a *Accessory, local string) ([]byte, error) {
	p := local
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.opts.Dir, local)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: Missing file: %s", ErrConfig, local)
	}
	if !strings.HasSuffix(local, ".erb") {
		return data, nil
	}
	env := c.opts.environ()
	for _, k := range a.env.clearKeys {
		env[k] = a.env.clear[k].S()
	}
	if len(a.env.secrets) > 0 && c.opts.Secrets == nil {
		name, secret, ok := strings.Cut(a.env.secrets[0], ":")
		if !ok {
			secret = name
		}
		return nil, fmt.Errorf("%w: %s needs secret %s but no secrets are loaded", ErrConfig, local, secret)
	}
	kvs, err := c.secretPairs(a.env.secrets, true)
	if err != nil {
		return nil, err
	}
	for _, kv := range kvs {
		env[kv.GetKey()] = kv.GetValue()
	}
	out, _, err := c.opts.render(local, data, env)
	return out, err
}

// AccessoryFiles are the accessory's files with their contents (.erb files
// rendered with the accessory env), failing on a missing local file.
func (c *Config) AccessoryFiles(name string) ([]*specv1.File, error) {
	a := c.Accessory(name)
	if a == nil {
		return nil, fmt.Errorf("%w: unknown accessory %s", ErrConfig, name)
	}
	ct := c.AccessoryContainer(name, "")
	fs := a.raw.Get("files")
	if fs == nil || fs.Kind != yaml11.KindSeq {
		return nil, nil
	}
	for i, f := range fs.Seq {
		local := f.Get("local").S()
		if f.Kind != yaml11.KindMap {
			local = strings.SplitN(f.S(), ":", 2)[0]
		}
		data, err := c.readAccessoryFile(a, local)
		if err != nil {
			return nil, err
		}
		ct.Files[i].Content = data
	}
	return ct.Files, nil
}
