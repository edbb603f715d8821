package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/agent/exec"
	"github.com/kctl-dev/kctl/internal/agent/selfupgrade"
	"github.com/kctl-dev/kctl/internal/cli"
	"github.com/kctl-dev/kctl/internal/version"
)

// Run is the `agent` command: `agent run --name N --data-dir D --controller
// A[,B...] [--token T]`, and `agent version`. rt carries out operations; nil
// means the Docker runtime on the local engine (or, with --runtime fake, a
// FakeRuntime that answers Noop and GatherFacts only). It runs until ctx is
// cancelled (SIGTERM).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, rt exec.Runtime) error {
	return cli.RunDaemon(ctx, "agent", "Run the kctl agent on a server: it dials out to the controllers and drives Docker",
		newRunCmd(stderr, rt), args, stdout, stderr, newSetupCmd(stdout))
}

// runArgs are `agent run`'s flags.
type runArgs struct {
	cli.DaemonFlags
	controllers string
	runtime     string
	shared      bool
	serverExec  bool
	kamalHome   string
}

func newRunCmd(stderr io.Writer, rt exec.Runtime) *cobra.Command {
	var a runArgs
	cmd := cli.NewRunCmd("run --name NAME --data-dir DIR --controller ADDR[,ADDR] [--token TOKEN]",
		"Enroll (first start, with a token) and serve the controllers' commands until stopped", &a.DaemonFlags,
		"this agent's name", "directory for the agent's key, certificates and journal",
		"join token, first start only (kctl token create --role agent)",
		func(ctx context.Context) error { return a.run(ctx, stderr, rt) })
	cmd.Long = `Enroll (first start, with a token) and serve the controllers' commands until stopped.

The agent also serves operators' logs and exec sessions through the
controllers (it opens no port). ` + "`kctl server exec`" + ` (admin operators only) runs
commands on this host as the agent's user, and is refused unless the agent
was started with --allow-server-exec. To end an exec the agent signals its
process by the host PID the engine reports: run the agent on the host, or
in a container with --pid host.`
	f := cmd.Flags()
	f.StringVar(&a.controllers, "controller", "", "controller API addresses, comma-separated")
	f.StringVar(&a.runtime, "runtime", "docker", "docker: drive the local Docker engine; fake: answer Noop and GatherFacts only (benchmarks)")
	f.BoolVar(&a.serverExec, "allow-server-exec", false, "let admin operators run commands on this host with kctl server exec (refused without it); the agent's user runs them")
	f.StringVar(&a.kamalHome, "kamal-home", "", "a host migrated from Kamal: read and write Kamal's .kamal tree (proxy apps-config, env files, assets) and resolve $PWD in volumes under DIR, the old SSH user's home, exactly where Kamal does (default: <data-dir>/host)")
	f.BoolVar(&a.shared, "shared-engine", false, "several agents share this Docker engine (tests, demos): label containers with the agent's name, prefix their names with <name>. and run its own kamal-proxy container")
	return cmd
}

func (a *runArgs) run(ctx context.Context, stderr io.Writer, rt exec.Runtime) error {
	cfg := Config{Name: a.Name, DataDir: a.DataDir, AllowServerExec: a.serverExec}
	tok, err := a.JoinToken()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	cfg.Token = tok
	if cfg.Logger, err = a.Logger(stderr); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	cfg.Controllers = strings.Split(a.controllers, ",")
	cfg.Version = version.Version
	if cfg.Name == "" || cfg.DataDir == "" || a.controllers == "" {
		return errors.New("agent: --name, --data-dir and --controller are required (agent run --name NAME --data-dir DIR --controller ADDR[,ADDR] --token TOKEN)")
	}
	if rt == nil && os.Getenv(selfupgrade.ChildEnv) == "" {
		// With a self-upgrade installed, the packaged binary supervises it.
		logf := func(format string, args ...any) { cfg.Logger.Info(fmt.Sprintf(format, args...)) }
		runSelf, err := selfupgrade.Supervise(ctx, cfg.DataDir, os.Args[1:], logf)
		if !runSelf {
			return err
		}
	}
	cfg.OnConnected = func() {
		if d := selfupgrade.RunningDigest(); d != "" {
			if err := selfupgrade.Commit(cfg.DataDir, d); err != nil {
				cfg.Logger.Warn("ending the upgrade's trial failed", "err", err)
			}
		}
	}
	if rt == nil {
		if rt, err = a.newRuntime(cfg); err != nil {
			return err
		}
	}
	cfg.Runtime = rt
	jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	ag, err := New(jctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	if err := ag.Run(ctx); !errors.Is(err, ErrRestart) {
		return err
	}
	return restart()
}

// restart runs the agent again on the binary an upgrade installed: a
// supervised child asks its supervisor; the packaged binary re-executes
// itself, and then supervises the new one.
func restart() error {
	if os.Getenv(selfupgrade.ChildEnv) != "" {
		return &cli.ExitError{Code: selfupgrade.ExitRestart}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("agent: restart after the upgrade: %w", err)
	}
	return syscall.Exec(exe, os.Args, os.Environ())
}

// newRuntime makes the runtime --runtime names.
func (a *runArgs) newRuntime(cfg Config) (exec.Runtime, error) {
	switch a.runtime {
	case "fake":
		return &FakeRuntime{}, nil
	case "docker":
		dcfg := docker.Config{DataDir: filepath.Join(cfg.DataDir, "host"), Logf: func(format string, args ...any) {
			cfg.Logger.Info(fmt.Sprintf(format, args...))
		}}
		if a.kamalHome != "" {
			if !filepath.IsAbs(a.kamalHome) {
				return nil, fmt.Errorf("agent: --kamal-home %q must be an absolute path (the old SSH user's home, e.g. /home/deploy)", a.kamalHome)
			}
			dcfg.StateDir, dcfg.DataDir = dcfg.DataDir, a.kamalHome
		}
		if a.shared {
			if !validSharedName(cfg.Name) {
				return nil, fmt.Errorf("agent: --shared-engine: name %q must be a valid container name prefix ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", cfg.Name)
			}
			dcfg.AgentName = cfg.Name
			dcfg.NamePrefix = cfg.Name + "."
			dcfg.ProxyName = "kamal-proxy-" + cfg.Name
			dcfg.ProxyVolume = "kamal-proxy-config-" + cfg.Name
		}
		return docker.New(dcfg)
	}
	return nil, fmt.Errorf("agent: --runtime %q: want docker or fake", a.runtime)
}

// validSharedName reports whether an agent name can prefix container names
// (Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]*).
func validSharedName(n string) bool {
	for i, c := range n {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '.' || c == '-')
		if !ok {
			return false
		}
	}
	return n != ""
}
