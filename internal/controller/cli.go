package controller

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"
)

// Run is the `controller` command: `controller run --name N --data-dir D
// --listen ADDR --raft-listen ADDR [--init | --join ADDR --token T]`. It
// serves until ctx is cancelled (SIGTERM), then shuts down cleanly.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
			fmt.Fprintln(stdout, "controller", Version)
			return nil
		}
		return errors.New("usage: controller run --name NAME --data-dir DIR --listen ADDR --raft-listen ADDR [--init | --join ADDR --token TOKEN]")
	}
	fs := flag.NewFlagSet("controller run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                      Config
		listen, raftListen       string
		advertise, raftAdvertise string
		join                     string
		logLevel                 string
	)
	fs.StringVar(&cfg.Name, "name", "", "this controller's name (its Raft server ID)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for Raft state, keys and certificates")
	fs.StringVar(&listen, "listen", "127.0.0.1:7443", "API address (agents and kctl)")
	fs.StringVar(&raftListen, "raft-listen", "127.0.0.1:7444", "Raft address (controllers only)")
	fs.StringVar(&advertise, "advertise", "", "API address others reach this node at (default --listen)")
	fs.StringVar(&raftAdvertise, "raft-advertise", "", "Raft address others reach this node at (default --raft-listen)")
	fs.BoolVar(&cfg.Init, "init", false, "start a new cluster (first start only)")
	fs.StringVar(&join, "join", "", "join the cluster of the controller at ADDR[,ADDR] (first start only)")
	fs.StringVar(&cfg.Token, "token", "", "join token (kctl token create --role controller)")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 5*time.Second, "agents' heartbeat interval")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	tokenFile := fs.String("token-file", "", "read the join token from this file (or set $"+ctlclient.TokenEnv+"), keeping it out of `ps`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	tok, err := ctlclient.ResolveToken(cfg.Token, *tokenFile)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if join != "" || cfg.Token != "" || *tokenFile != "" {
		cfg.Token = tok // $KCTL_TOKEN matters only when joining
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("controller: unexpected argument %q", fs.Arg(0))
	}
	if cfg.Init && join != "" {
		return errors.New("controller: --init and --join exclude each other: --init starts a new cluster, --join enters an existing one")
	}
	if join != "" {
		cfg.JoinAddrs = strings.Split(join, ",")
	} else if cfg.Token != "" {
		return errors.New("controller: --token is only used with --join")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("controller: --log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.APIAddress, cfg.RaftAddress = advertise, raftAdvertise

	apiLn, err := listenFlag("--listen", listen)
	if err != nil {
		return err
	}
	raftLn, err := listenFlag("--raft-listen", raftListen)
	if err != nil {
		apiLn.Close()
		return err
	}
	cfg.APIListener, cfg.RaftListener = apiLn, raftLn
	startCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	c, err := Start(startCtx, cfg)
	if err != nil {
		return err
	}
	if cfg.Init {
		fmt.Fprintf(stdout, "initialized a new cluster; admin credentials: %s\n", c.path(adminFile))
		fmt.Fprintf(stdout, "try: kctl --credentials %s cluster status\n", c.path(adminFile))
	}
	<-ctx.Done()
	c.log.Info("shutting down")
	return c.Close()
}

func listenFlag(flagName, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("controller: %s %s: address already in use (another controller may be running there; pick another port)", flagName, addr)
		}
		return nil, fmt.Errorf("controller: %s %s: %w", flagName, addr, err)
	}
	return ln, nil
}

// Version is the build's version, set with -ldflags "-X ...controller.Version=v".
var Version = "dev"
