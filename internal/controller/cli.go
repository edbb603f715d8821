package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/cli"
)

// Run is the `controller` command: `controller run --name N --data-dir D
// --listen ADDR --raft-listen ADDR [--init | --join ADDR --token T]`, and
// `controller version`. It serves until ctx is cancelled (SIGTERM), then
// shuts down cleanly.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.RunDaemon(ctx, "controller", "Run a kctl controller: the Raft-replicated control plane agents and kctl talk to",
		newRunCmd(stdout, stderr), args, stdout, stderr)
}

// runArgs are `controller run`'s flags.
type runArgs struct {
	cli.DaemonFlags
	cfg                      Config
	listen, raftListen       string
	advertise, raftAdvertise string
	join                     string
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var a runArgs
	cmd := cli.NewRunCmd("run --name NAME --data-dir DIR --listen ADDR --raft-listen ADDR [--init [--restore FILE] | --join ADDR --token TOKEN | --force-new-cluster]",
		"Start or join a cluster (first start), or resume from the data dir, and serve until stopped", &a.DaemonFlags,
		"this controller's name (its Raft server ID)", "directory for Raft state, keys and certificates",
		"join token (kctl token create --role controller)",
		func(ctx context.Context) error { return a.run(ctx, stdout, stderr) })
	f := cmd.Flags()
	f.StringVar(&a.listen, "listen", "127.0.0.1:7443", "API address (agents and kctl)")
	f.StringVar(&a.raftListen, "raft-listen", "127.0.0.1:7444", "Raft address (controllers only)")
	f.StringVar(&a.advertise, "advertise", "", "API address others reach this node at (default --listen)")
	f.StringVar(&a.raftAdvertise, "raft-advertise", "", "Raft address others reach this node at (default --raft-listen)")
	f.BoolVar(&a.cfg.Init, "init", false, "start a new cluster (first start only)")
	f.StringVar(&a.cfg.Restore, "restore", "", "with --init: start the new cluster from this backup file (kctl cluster snapshot save): same CA, tables and tokens; an empty --data-dir")
	f.BoolVar(&a.cfg.ForceNewCluster, "force-new-cluster", false, "disaster recovery, for one start only: resume from --data-dir as the only member of a new one-node cluster (the others are lost for good; they re-join with fresh data dirs)")
	f.StringVar(&a.join, "join", "", "join the cluster of the controller at ADDR[,ADDR] (first start only)")
	f.BoolVar(&a.cfg.Resume, "resume", false, "with --init or --join: when the data dir already holds this controller's state, resume instead of refusing (service units pass the same flags at every start)")
	f.DurationVar(&a.cfg.HeartbeatInterval, "heartbeat-interval", 5*time.Second, "agents' heartbeat interval")
	f.DurationVar(&a.cfg.AuditRetention.MaxAge, "audit-retain-age", 0, "drop audit entries older than this behind a signed checkpoint (0: keep)")
	f.IntVar(&a.cfg.AuditRetention.MaxEntries, "audit-retain-count", 0, "keep at most this many audit entries, dropping the oldest behind a signed checkpoint (0: keep all)")
	f.BoolVar(&a.cfg.Autolock, "autolock", false, "keep the key-encryption key in memory only: after each restart, `kctl cluster unlock` (the key is in the admin credentials --init writes)")
	f.StringVar(&a.cfg.KEKFile, "kek-file", "", "the key-encryption key that opens the CA key sealed in Raft (0600; default DATA_DIR/kek): put it on other storage than the data dir so a copy of the data dir alone reveals no key")
	f.IntVar(&a.cfg.MaxConns, "max-connections", 0, "API connections held at most (default: the open-file limit less 1024, at most 16384)")
	f.IntVar(&a.cfg.MaxUnauthenticatedConns, "max-unauthenticated-connections", 0, "API connections without a client certificate held at most (default 4096)")
	f.IntVar(&a.cfg.MaxConnsPerSource, "max-connections-per-source", 0, "API connections without a client certificate held at most per source address (default 256)")
	return cmd
}

// config checks the flags and resolves them into a Config without
// listeners.
func (a *runArgs) config(stderr io.Writer) (Config, error) {
	cfg := a.cfg
	cfg.Name, cfg.DataDir = a.Name, a.DataDir
	tok, err := a.JoinToken()
	if err != nil {
		return cfg, fmt.Errorf("controller: %w", err)
	}
	if a.join != "" || a.Token != "" || a.TokenFile != "" {
		cfg.Token = tok // $KCTL_TOKEN matters only when joining
	}
	if cfg.Init && a.join != "" {
		return cfg, errors.New("controller: --init and --join exclude each other: --init starts a new cluster, --join enters an existing one")
	}
	if cfg.Restore != "" && !cfg.Init {
		return cfg, errors.New("controller: --restore needs --init: a restore starts a new cluster in an empty --data-dir")
	}
	if cfg.ForceNewCluster && (cfg.Init || a.join != "") {
		return cfg, errors.New("controller: --force-new-cluster resumes from an existing --data-dir: it excludes --init and --join")
	}
	if a.join != "" {
		cfg.JoinAddrs = strings.Split(a.join, ",")
	} else if cfg.Token != "" {
		return cfg, errors.New("controller: --token is only used with --join")
	}
	if cfg.Logger, err = a.Logger(stderr); err != nil {
		return cfg, fmt.Errorf("controller: %w", err)
	}
	cfg.APIAddress, cfg.RaftAddress = a.advertise, a.raftAdvertise
	return cfg, nil
}

func (a *runArgs) run(ctx context.Context, stdout, stderr io.Writer) error {
	cfg, err := a.config(stderr)
	if err != nil {
		return err
	}
	apiLn, err := listenFlag("--listen", a.listen)
	if err != nil {
		return err
	}
	raftLn, err := listenFlag("--raft-listen", a.raftListen)
	if err != nil {
		apiLn.Close()
		return err
	}
	cfg.APIListener, cfg.RaftListener = apiLn, raftLn
	// A joiner catches up before it serves: on a busy cluster with a large
	// state that may take a while.
	startTimeout := 90 * time.Second
	if len(cfg.JoinAddrs) > 0 {
		startTimeout = 10 * time.Minute
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c, err := Start(startCtx, cfg)
	if err != nil {
		return err
	}
	if c.cfg.Init { // not when --resume resumed
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
