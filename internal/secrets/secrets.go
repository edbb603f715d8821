package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/kctl-dev/kctl/internal/shellwords"
)

// Runner runs an external command and returns its standard output. The
// adapters and shell substitutions go through it so tests can fake vendors.
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
	LookPath(name string) (string, error)
}

// ExecRunner runs real commands.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	cmd.Stderr = nil
	out, err := cmd.Output()
	if err != nil {
		// Never return stderr: vendor CLIs may echo secrets.
		return nil, fmt.Errorf("%w: %s exited: %v", ErrCommand, name, exitStatus(err))
	}
	return out, nil
}

// LookPath implements Runner.
func (ExecRunner) LookPath(name string) (string, error) { return exec.LookPath(name) }

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Sprintf("status %d", ee.ExitCode())
	}
	return "failed to start"
}

// Options configure a Store.
type Options struct {
	// Dir is the project directory.
	Dir string
	// Path is secrets_path, default ".kamal/secrets".
	Path string
	// Destination selects .kamal/secrets.<dest> instead of .kamal/secrets.
	Destination string
	// Env is the environment for $VAR and commands; nil means the process's.
	Env map[string]string
	// Runner runs commands; nil means ExecRunner.
	Runner Runner
}

// Store holds the secrets of one project and destination, loaded lazily.
type Store struct {
	opts   Options
	once   sync.Once
	err    error
	values map[string]string
	files  []string
}

// New returns a Store; files are read on first use.
func New(opts Options) *Store {
	if opts.Path == "" {
		opts.Path = ".kamal/secrets"
	}
	if opts.Runner == nil {
		opts.Runner = ExecRunner{}
	}
	env := map[string]string{}
	if opts.Env == nil {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	} else {
		for k, v := range opts.Env {
			env[k] = v
		}
	}
	// Kamal sets KAMAL_DESTINATION before anything reads the secrets.
	if opts.Destination != "" {
		env["KAMAL_DESTINATION"] = opts.Destination
	} else {
		delete(env, "KAMAL_DESTINATION")
	}
	opts.Env = env
	return &Store{opts: opts}
}

// SetSecretsPath sets secrets_path (from deploy.yml) before the first
// lookup; later calls are ignored.
func (s *Store) SetSecretsPath(p string) {
	if p == "" || s.values != nil {
		return
	}
	s.opts.Path = p
}

// Files are the secrets files Kamal reads, in order.
func (s *Store) Files() []string {
	files := []string{s.opts.Path + "-common"}
	if s.opts.Destination != "" {
		files = append(files, s.opts.Path+"."+s.opts.Destination)
	} else {
		files = append(files, s.opts.Path)
	}
	return files
}

func (s *Store) load() {
	s.values = map[string]string{}
	for _, f := range s.Files() {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.opts.Dir, f)
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			s.err = fmt.Errorf("secrets file %s: %w", f, err)
			return
		}
		s.files = append(s.files, f)
		vals, _, err := Parse(string(data), s.opts.Env, s.substitute)
		if err != nil {
			s.err = fmt.Errorf("%s: %w", f, err)
			return
		}
		for k, v := range vals {
			s.values[k] = v
		}
	}
}

// Secret returns the named secret.
func (s *Store) Secret(name string) (string, error) {
	s.once.Do(s.load)
	if s.err != nil {
		return "", s.err
	}
	if v, ok := s.values[name]; ok {
		return v, nil
	}
	if len(s.files) == 0 {
		return "", fmt.Errorf("%w: Secret '%s' not found, no secret files (%s) provided", ErrNotFound, name, strings.Join(s.Files(), ", "))
	}
	return "", fmt.Errorf("%w: Secret '%s' not found in %s", ErrNotFound, name, strings.Join(s.files, ", "))
}

// All returns every secret (for hooks and `secrets print`).
func (s *Store) All() (map[string]string, error) {
	s.once.Do(s.load)
	if s.err != nil {
		return nil, s.err
	}
	out := make(map[string]string, len(s.values))
	for k, v := range s.values {
		out[k] = v
	}
	return out, nil
}

// Keys returns the secret names, sorted.
func (s *Store) Keys() ([]string, error) {
	all, err := s.All()
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// substitute runs one $(…) command: `kamal secrets …` and `kctl secrets …`
// in-process, anything else with sh -c.
func (s *Store) substitute(command string) (string, error) {
	words, err := shellwords.Split(command)
	if err != nil {
		return "", fmt.Errorf("%w: cannot parse $(%s): %v", ErrCommand, redactCommand(command), err)
	}
	if len(words) >= 2 && (words[0] == "kamal" || words[0] == "kctl" || strings.HasSuffix(words[0], "/kamal") || strings.HasSuffix(words[0], "/kctl")) && words[1] == "secrets" {
		return RunInline(context.Background(), s.opts.Runner, words[2:])
	}
	env := make([]string, 0, len(s.opts.Env))
	for k, v := range s.opts.Env {
		env = append(env, k+"="+v)
	}
	out, err := s.opts.Runner.Run(context.Background(), env, "sh", "-c", command)
	if err != nil {
		return "", fmt.Errorf("%w: $(%s) failed", ErrCommand, redactCommand(command))
	}
	return string(out), nil
}

// RunInline runs `secrets fetch|extract` as Kamal's --inline does: fetch
// returns the shell-escaped JSON, extract the bare value.
func RunInline(ctx context.Context, r Runner, args []string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("%w: secrets: missing subcommand", ErrCommand)
	}
	switch args[0] {
	case "fetch":
		f, err := parseFetchArgs(args[1:])
		if err != nil {
			return "", err
		}
		vals, err := Fetch(ctx, r, f)
		if err != nil {
			return "", err
		}
		data, _ := json.Marshal(vals)
		return shellwords.Escape(string(data)), nil
	case "extract":
		if len(args) < 3 {
			return "", fmt.Errorf("%w: secrets extract NAME SECRETS", ErrCommand)
		}
		return Extract(args[1], args[2])
	}
	return "", fmt.Errorf("%w: secrets %s cannot run inline", ErrCommand, args[0])
}

// FetchArgs are `secrets fetch` options.
type FetchArgs struct {
	Adapter string
	Account string
	From    string
	Secrets []string
}

func parseFetchArgs(args []string) (FetchArgs, error) {
	var f FetchArgs
	for i := 0; i < len(args); i++ {
		a := args[i]
		take := func() (string, error) {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
				return v, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%w: %s needs a value", ErrCommand, a)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "--inline":
		case a == "-a" || a == "--adapter" || strings.HasPrefix(a, "--adapter="):
			f.Adapter, err = take()
		case a == "--account" || strings.HasPrefix(a, "--account="):
			f.Account, err = take()
		case a == "--from" || strings.HasPrefix(a, "--from="):
			f.From, err = take()
		case strings.HasPrefix(a, "-"):
			err = fmt.Errorf("%w: unknown option %s", ErrCommand, a)
		default:
			f.Secrets = append(f.Secrets, a)
		}
		if err != nil {
			return f, err
		}
	}
	if f.Adapter == "" {
		return f, fmt.Errorf("%w: No value provided for required options '--adapter'", ErrCommand)
	}
	return f, nil
}

// Extract picks name from a fetch result: the key itself or the key ending in
// "/name".
func Extract(name, secretsJSON string) (string, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(secretsJSON), &m); err != nil {
		return "", fmt.Errorf("%w: secrets extract %s: the secrets are not JSON", ErrCommand, name)
	}
	if v, ok := m[name]; ok {
		return fmt.Sprint(v), nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasSuffix(k, "/"+name) {
			return fmt.Sprint(m[k]), nil
		}
	}
	return "", fmt.Errorf("%w: Could not find secret %s", ErrNotFound, name)
}
