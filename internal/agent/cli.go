package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/agent/exec"
)

// Version is the build's version, set with -ldflags "-X ...agent.Version=v".
var Version = "dev"

// Run is the `agent` command: `agent run --name N --data-dir D --controller
// A[,B...] [--token T]`. rt carries out operations; nil means the Docker
// runtime on the local engine (or, with --runtime fake, a FakeRuntime that
// answers Noop and GatherFacts only). It runs until ctx is cancelled
// (SIGTERM).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, rt exec.Runtime) error {
	if len(args) == 0 || args[0] != "run" {
		if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
			fmt.Fprintln(stdout, "agent", Version)
			return nil
		}
		return errors.New("usage: agent run --name NAME --data-dir DIR --controller ADDR[,ADDR] [--token TOKEN]")
	}
	fs := flag.NewFlagSet("agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg         Config
		controllers string
		logLevel    string
	)
	fs.StringVar(&cfg.Name, "name", "", "this agent's name")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for the agent's key, certificates and journal")
	fs.StringVar(&controllers, "controller", "", "controller API addresses, comma-separated")
	fs.StringVar(&cfg.Token, "token", "", "join token, first start only (kctl token create --role agent)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	runtime := fs.String("runtime", "docker", "docker: drive the local Docker engine; fake: answer Noop and GatherFacts only (benchmarks)")
	shared := fs.Bool("shared-engine", false, "several agents share this Docker engine (tests, demos): label containers with the agent's name, prefix their names with <name>. and run its own kamal-proxy container")
	tokenFile := fs.String("token-file", "", "read the join token from this file (or set $"+ctlclient.TokenEnv+"), keeping it out of `ps`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	tok, err := ctlclient.ResolveToken(cfg.Token, *tokenFile)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	cfg.Token = tok
	if fs.NArg() > 0 {
		return fmt.Errorf("agent: unexpected argument %q", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("agent: --log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Controllers = strings.Split(controllers, ",")
	cfg.Version = Version
	if cfg.Name == "" || cfg.DataDir == "" || controllers == "" {
		return errors.New("agent: --name, --data-dir and --controller are required (agent run --name NAME --data-dir DIR --controller ADDR[,ADDR] --token TOKEN)")
	}
	if rt == nil {
		switch *runtime {
		case "fake":
			rt = &FakeRuntime{}
		case "docker":
			dcfg := docker.Config{DataDir: filepath.Join(cfg.DataDir, "host"), Logf: func(format string, args ...any) {
				cfg.Logger.Info(fmt.Sprintf(format, args...))
			}}
			if *shared {
				if !validSharedName(cfg.Name) {
					return fmt.Errorf("agent: --shared-engine: name %q must be a valid container name prefix ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", cfg.Name)
				}
				dcfg.AgentName = cfg.Name
				dcfg.NamePrefix = cfg.Name + "."
				dcfg.ProxyName = "kamal-proxy-" + cfg.Name
				dcfg.ProxyVolume = "kamal-proxy-config-" + cfg.Name
			}
			drt, err := docker.New(dcfg)
			if err != nil {
				return err
			}
			rt = drt
		default:
			return fmt.Errorf("agent: --runtime %q: want docker or fake", *runtime)
		}
	}
	cfg.Runtime = rt
	jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	a, err := New(jctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	return a.Run(ctx)
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
