package kamalconfig

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kctl-dev/kctl/internal/kamalconfig/erb"
	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

// SecretResolver resolves a secret by name. It must never put a secret value
// into an error message.
type SecretResolver interface {
	Secret(name string) (string, error)
}

// SecretFunc adapts a function to SecretResolver.
type SecretFunc func(name string) (string, error)

// Secret implements SecretResolver.
func (f SecretFunc) Secret(name string) (string, error) { return f(name) }

// Options says what to load and how.
type Options struct {
	// Dir is the project directory (the folder that contains config/).
	Dir string
	// ConfigFile is relative to Dir; default "config/deploy.yml".
	ConfigFile string
	// Destination is -d; empty for none.
	Destination string
	// Version is the app version (--version); empty means VERSION from Env.
	Version string
	// Env is the environment templates see. Nil means the process environment.
	Env map[string]string
	// Secrets resolves secret names; nil means secrets are left unresolved
	// (specs then carry no secret values).
	Secrets SecretResolver
	// ERB selects the template renderer; erb.Auto by default.
	ERB erb.Mode
	// Ruby is the ruby executable for the ERB fallback; empty means look it
	// up on PATH ("-" disables it).
	Ruby string
	// ShellStub, when set, makes backticks and %x() in templates return this
	// string instead of running a command (tests reproducing Kamal's corpus).
	// Only this field sets it: no environment variable does.
	ShellStub *string
	// HostnameSuffix returns the 12 hex characters Kamal appends to the
	// container hostname; nil means random.
	HostnameSuffix func() string
	// KamalVersion is the Kamal compatibility level checked against
	// minimum_version; default CompatVersion.
	KamalVersion string
}

// CompatVersion is the Kamal release whose configuration kctl understands.
const CompatVersion = "2.12.0"

func (o *Options) configFile() string {
	if o.ConfigFile == "" {
		return "config/deploy.yml"
	}
	return o.ConfigFile
}

// destinationFile is Ruby's Pathname#sub_ext(".<dest>.yml").
func destinationFile(base, dest string) string {
	ext := filepath.Ext(base)
	if strings.HasPrefix(filepath.Base(base), ".") && filepath.Base(base) == ext {
		ext = ""
	}
	return strings.TrimSuffix(base, ext) + "." + dest + ".yml"
}

// environ is the environment templates see: a copy of Env, or of the
// process environment when Env is nil.
func (o *Options) environ() map[string]string {
	if o.Env != nil {
		return maps.Clone(o.Env)
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// rubyPath is the ruby for the ERB fallback, "" for none.
func (o *Options) rubyPath() string {
	switch o.Ruby {
	case "-":
		return ""
	case "":
		p, _ := exec.LookPath("ruby")
		return p
	}
	return o.Ruby
}

// render renders one template file (named file in messages) with env.
func (o *Options) render(file string, src []byte, env map[string]string) ([]byte, []int, error) {
	return renderTemplate(src, &erb.Options{File: file, Dir: o.Dir, Env: env, Mode: o.ERB, ShellStub: o.ShellStub, Ruby: o.rubyPath()})
}

// LoadRaw reads, renders and merges the configuration files without
// validating them: Kamal's raw_config.
func LoadRaw(opts Options) (*yaml11.Value, error) {
	env := opts.environ()
	if opts.Destination != "" {
		env["KAMAL_DESTINATION"] = opts.Destination
	} else {
		delete(env, "KAMAL_DESTINATION")
	}
	files := []string{opts.configFile()}
	if opts.Destination != "" {
		files = append(files, destinationFile(opts.configFile(), opts.Destination))
	}
	merged := yaml11.NewMap()
	for _, f := range files {
		v, err := opts.loadFile(f, env)
		if err != nil {
			return nil, err
		}
		merged = yaml11.DeepMerge(merged, v)
		if merged.Pos.File == "" {
			merged.Pos = v.Pos
		}
	}
	return merged, nil
}

// loadFile reads, renders and parses one configuration file, which must
// hold a hash.
func (o *Options) loadFile(f string, env map[string]string) (*yaml11.Value, error) {
	full := f
	if !filepath.IsAbs(full) {
		full = filepath.Join(o.Dir, f)
	}
	src, err := os.ReadFile(full)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &Error{Kind: "RuntimeError", Msg: "Configuration file not found in " + f, Pos: yaml11.Pos{File: f}, Err: ErrNotFound}
	}
	if err != nil {
		return nil, &Error{Kind: "RuntimeError", Msg: err.Error(), Pos: yaml11.Pos{File: f}, Err: ErrNotFound}
	}
	rendered, lineMap, err := o.render(f, src, env)
	if err != nil {
		return nil, err
	}
	v, err := parseYAML(f, rendered, lineMap)
	if err != nil {
		return nil, err
	}
	if v.Kind != yaml11.KindMap {
		return nil, &Error{Kind: "NoMethodError", Msg: fmt.Sprintf("undefined method `symbolize_keys' for %s", rubyNilOrClass(v)), Pos: v.Pos, Err: ErrConfig}
	}
	return v, nil
}

func rubyNilOrClass(v *yaml11.Value) string {
	switch v.Kind {
	case yaml11.KindNull:
		return "nil:NilClass"
	case yaml11.KindSeq:
		return "an instance of Array"
	case yaml11.KindString:
		return "an instance of String"
	case yaml11.KindInt:
		return "an instance of Integer"
	case yaml11.KindBool:
		if v.Bool {
			return "true:TrueClass"
		}
		return "false:FalseClass"
	}
	return "an instance of Object"
}

// Load reads, validates and models a Kamal project.
func Load(opts Options) (*Config, error) {
	raw, err := LoadRaw(opts)
	if err != nil {
		return nil, err
	}
	return New(raw, opts)
}

func randomHex12() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// gitVersion is Kamal's default version: the HEAD commit, with
// `_uncommitted_<16 hex>` appended when the tree is dirty and the build
// clones the repository (no builder.context).
func gitVersion(dir string, cloneBuild bool) (string, error) {
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", &Error{Kind: "RuntimeError", Msg: "Can't use commit hash as version, no git repository found in " + dir, Err: ErrConfig}
	}
	v := strings.TrimSpace(string(out))
	if cloneBuild {
		st := exec.Command("git", "status", "--porcelain")
		st.Dir = dir
		if o, err := st.Output(); err == nil && len(strings.TrimSpace(string(o))) > 0 {
			v += "_uncommitted_" + randomHex12() + randomHex12()[:4]
		}
	}
	return v, nil
}
