// Package controller is the kctl controller: a member of a Raft-replicated
// cluster (internal/raftstore) that holds the cluster CA, the join tokens,
// the controllers, agents and operators, and the commands addressed to
// agents; serves the gRPC API over mutual TLS (internal/pki authorizes every
// method through one Policy, policy.go); forwards writes received as a
// follower to the leader (write.go); and holds agent sessions on every
// controller, leader or not (internal/dispatcher, over dispatcherCluster).
// Every Raft table it uses is declared in internal/schema; errors become
// gRPC statuses through internal/rpcerr.
//
// Lifecycle: Start opens the data directory, starts Raft and serves on the
// caller-owned listeners; Close stops serving, flushes presence and closes
// Raft. Run (cli.go) is the `controller run` command.
package controller

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	fleetv1 "github.com/kctl-dev/kctl/gen/kctl/fleet/v1"
	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/blobstore"
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/dispatcher"
	"github.com/kctl-dev/kctl/internal/grpcbuf"
	"github.com/kctl-dev/kctl/internal/netlimit"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/protocol"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/relay"
	"github.com/kctl-dev/kctl/internal/schema"
)

var (
	// ErrDataDir is returned when the data directory is missing, unreadable
	// or in the wrong state for the requested start.
	ErrDataDir = errors.New("controller: data dir")
	// ErrJoin is returned when joining a cluster fails.
	ErrJoin = errors.New("controller: join")
	// ErrNoLeader is returned when no leader could be reached in time.
	ErrNoLeader = errors.New("controller: no leader")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("controller: closed")
)

// Raft timing of a controller (Config.Raft may change it): hashicorp/raft's
// defaults (1 s, 1 s, 500 ms) halved, so a new leader is elected within
// about 1-2 s of losing the old one on a LAN. See docs/membership.md.
const (
	RaftHeartbeatTimeout   = 500 * time.Millisecond
	RaftElectionTimeout    = 500 * time.Millisecond
	RaftLeaderLeaseTimeout = 250 * time.Millisecond
)

// Files under Config.DataDir.
const (
	nodeKeyFile  = "node.key"
	nodeCertFile = "node.crt"
	caCertFile   = "ca.crt"
	adminFile    = "admin.kctl.yaml"
	// kekFile holds the key-encryption key (0600), outside Raft: it wraps
	// the data key that seals the CA's private key in Raft (keys.go).
	kekFile = "kek"
)

// Config configures a controller.
type Config struct {
	// Name is the controller's name, its Raft server ID.
	Name string
	// DataDir holds Raft state and the node's key and certificates.
	DataDir string
	// KEKFile is where the key-encryption key is kept (keys.go); default
	// DataDir/kek.
	KEKFile string
	// Autolock keeps the key-encryption key in memory only: after a
	// restart the controller cannot sign until an admin runs
	// `kctl cluster unlock` (keys.go).
	Autolock bool
	// APIListener and RaftListener are owned by the caller; Close closes
	// them.
	APIListener, RaftListener net.Listener
	// APIAddress and RaftAddress are the addresses others reach this node
	// at (default: the listeners' addresses).
	APIAddress, RaftAddress string
	// Init starts a new cluster; JoinAddrs with Token joins one. Neither
	// resumes from DataDir.
	Init      bool
	JoinAddrs []string
	Token     string
	// Restore, with Init, starts the new cluster from a backup file (kctl
	// cluster snapshot save) instead of an empty state (restore.go).
	Restore string
	// ForceNewCluster resumes from DataDir as the only member of a new
	// one-node cluster, for a cluster that lost its quorum for good
	// (restore.go).
	ForceNewCluster bool
	// Resume makes Init and JoinAddrs first-start-only: when DataDir
	// already holds this node's state they are ignored and the node
	// resumes (service units pass the same flags at every start).
	Resume bool
	// HeartbeatInterval is the agents' heartbeat interval (default 5s).
	HeartbeatInterval time.Duration
	// PresenceInterval is how often a controller probes the others'
	// liveness and checks its presence record for a change to write
	// (default 2s); connects and disconnects are recorded within ~100 ms,
	// and nothing is written while nothing changes.
	PresenceInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Raft tweaks the Raft config (tests shorten timeouts).
	Raft func(*raftstore.Config)
	// AuditRetention drops old audit entries behind a signed checkpoint
	// (zero: keep everything).
	AuditRetention AuditRetention
	// BlobBytes bounds the blob store (agent binaries) under DataDir/blobs
	// (default DefaultBlobBytes).
	BlobBytes int64
	// GRPCBufferSize sets the server's per-connection read buffer size
	// (default 4 KiB: thousands of agent sessions stay cheap). The write
	// buffer is grpcbuf.WriteBuffer, shared (held only while flushing).
	GRPCBufferSize int
	// MaxConns caps the API listener's connections in all (default: the
	// open-file limit less 1024, at most 16384); MaxUnauthenticatedConns
	// and MaxConnsPerSource cap those without a client certificate, in all
	// (default 4096) and per source address (default 256); see
	// internal/netlimit.
	MaxConns, MaxUnauthenticatedConns, MaxConnsPerSource int
	// Clock drives the timers that guard safety: garbage collection of
	// commands and tokens, token expiry, certificate renewal and the deploy
	// runner's (clock.Real when nil). Raft, gRPC, TLS and presence keep the
	// real time.
	Clock clock.Clock
}

// Controller is one running controller.
type Controller struct {
	cfg       Config
	log       *slog.Logger
	creds     *pki.Credentials
	clusterID string
	store     *raftstore.Store
	grpc      *grpc.Server
	health    *health.Server
	disp      *dispatcher.Dispatcher
	peers     *peerPool
	auth      *pki.Authorizer
	auditor   *auditor
	blobs     *blobstore.Store
	apiLn     *netlimit.Listener
	joins     *joinGate
	live      liveness
	// init is set by --init until bootstrap records it; joinPeers are the
	// controllers a --join response named.
	init      *initState
	joinPeers []string
	// takeOver is set by --restore and --force-new-cluster until
	// recordTakeOver records it.
	takeOver *takeOverState
	// kekMu guards kek, the key-encryption key (keys.go); nil while its
	// file is absent (a cluster made before it existed, whose CA key Raft
	// holds in plaintext, or a KEK kept on storage not yet mounted).
	kekMu sync.Mutex
	// trustMu serializes following the cluster's CA (carotate.go).
	trustMu sync.Mutex
	kek     []byte
	// pokeCh wakes the membership reconciler.
	pokeCh chan struct{}
	// seenIndex is the applied index at which this node first saw its own
	// node record (memberFile; 0: not yet), membership.go.
	seenIndex atomic.Uint64
	// diskErr holds the last failed write to the data dir (health.go).
	diskErr atomic.Pointer[string]
	// catchingUp is set while a joining controller has not caught up: it
	// refuses most calls (health.go gated).
	catchingUp atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Start starts a controller: it initializes, joins or resumes from
// cfg.DataDir, starts Raft, and serves the API. It returns once the node
// serves (for --init: once it leads and the CA is recorded; for --join: once
// it is a voter).
func Start(ctx context.Context, cfg Config) (*Controller, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, log: cfg.Logger.With("controller", cfg.Name), pokeCh: make(chan struct{}, 1), joins: newJoinGate()}
	c.live.last = map[string]time.Time{}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.catchingUp.Store(len(cfg.JoinAddrs) > 0)
	ok := false
	defer func() {
		if !ok {
			c.cancel()
			if c.store != nil {
				c.store.Close()
			}
			cfg.APIListener.Close()
			cfg.RaftListener.Close()
		}
	}()
	adminCreds, err := c.setUp(ctx)
	if err != nil {
		return nil, err
	}
	c.serve()
	if len(c.cfg.JoinAddrs) > 0 { // not when --resume resumed
		c.log.Info("catching up with the cluster")
		if err := c.becomeVoter(ctx); err != nil {
			c.Close()
			ok = true // Close cleaned up
			return nil, err
		}
	}
	if adminCreds != nil {
		path := filepath.Join(cfg.DataDir, adminFile)
		if err := atomicfile.WriteFile(path, adminCreds, 0o600); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDataDir, err)
		}
		c.log.Info("wrote admin credentials", "path", path)
	}
	ok = true
	c.observeSelf()
	c.updateServing()
	c.log.Info("controller serving", "api", cfg.APIAddress, "raft", cfg.RaftAddress, "cluster", c.clusterID)
	return c, nil
}

// setDefaults checks cfg and fills in its defaults.
func (cfg *Config) setDefaults() error {
	if cfg.Name == "" {
		return errors.New("controller: --name is required")
	}
	if err := validName(cfg.Name); err != nil {
		return fmt.Errorf("controller: --name: %w", err)
	}
	if cfg.DataDir == "" {
		return errors.New("controller: --data-dir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.PresenceInterval == 0 {
		cfg.PresenceInterval = 2 * time.Second
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.BlobBytes == 0 {
		cfg.BlobBytes = DefaultBlobBytes
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = defaultMaxConns()
	}
	if cfg.GRPCBufferSize == 0 {
		cfg.GRPCBufferSize = 4 << 10
	}
	if cfg.APIAddress == "" {
		cfg.APIAddress = cfg.APIListener.Addr().String()
	}
	if cfg.RaftAddress == "" {
		cfg.RaftAddress = cfg.RaftListener.Addr().String()
	}
	return nil
}

// setUp gets the node's credentials (new with --init, from the cluster with
// --join, from the data directory otherwise), opens the store, bootstraps a
// new cluster and builds the servers. With --init it returns the admin's
// credentials file.
func (c *Controller) setUp(ctx context.Context) (adminCreds []byte, err error) {
	if c.cfg.Resume && fileExists(c.path(nodeCertFile)) {
		c.cfg.Init, c.cfg.JoinAddrs, c.cfg.Token = false, nil, ""
	}
	cfg := c.cfg
	if err := c.checkDataDir(cfg.Init || len(cfg.JoinAddrs) > 0); err != nil {
		return nil, err
	}
	switch {
	case cfg.Init && cfg.Restore != "":
		adminCreds, err = c.restoreCredentials()
	case cfg.Init:
		adminCreds, err = c.initCredentials()
	case len(cfg.JoinAddrs) > 0:
		err = c.joinCredentials(ctx)
	default:
		err = c.loadCredentials()
	}
	if err != nil {
		return nil, err
	}
	c.clusterID = c.creds.ClusterID()
	c.loadMember()
	c.peers = newPeerPool(c)
	if c.blobs, err = blobstore.Open(c.path("blobs"), cfg.BlobBytes); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	if err := c.openStore(); err != nil {
		return nil, err
	}
	if cfg.ForceNewCluster {
		c.takeOver = &takeOverState{action: "cluster forced to a new one-node cluster", detail: "controller run --force-new-cluster on " + cfg.Name}
	}
	switch {
	case c.takeOver != nil:
		if err := c.recordTakeOver(ctx); err != nil {
			return nil, err
		}
	case cfg.Init:
		if err := c.bootstrap(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.checkProtocol(); err != nil {
		return nil, err
	}
	c.auth = &pki.Authorizer{Policy: Policy, ClusterID: c.clusterID, Revoked: c.revoked, Explain: c.explainRevoked, RootsFunc: c.creds.CAPool}
	c.auditor = &auditor{apply: c.apply}
	c.disp = dispatcher.New(dispatcher.Config{
		Name: cfg.Name, HeartbeatInterval: cfg.HeartbeatInterval, PresenceInterval: cfg.PresenceInterval,
		Logger: c.log, OnRemoved: func() { c.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) },
		Removed: c.removedFromCluster,
	}, dispatcherCluster{Store: c.store, c: c})
	c.grpc = c.newServer()
	return adminCreds, nil
}

// The controller's keepalive toward its peers (newServer): a dropped peer
// is noticed within pingAfter+pingTimeout.
const (
	pingAfter   = 2 * time.Second
	pingTimeout = 3 * time.Second
)

// newServer builds the gRPC server of every service the controller serves,
// authorized per method by Policy.
func (c *Controller) newServer() *grpc.Server {
	cfg := c.cfg
	s := grpc.NewServer(
		// A handshake has handshakeTimeout; a connection with a client
		// certificate is evicted last when the caps are reached.
		grpc.Creds(netlimit.Credentials(credentials.NewTLS(c.creds.ServerTLS()), handshakeTimeout)),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.MaxRecvMsgSize(maxRecvMsgBytes),
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.ChainUnaryInterceptor(c.gateUnary, c.auth.UnaryInterceptor(), c.haltedUnary, c.limitUnary, c.announce, c.auditUnary),
		grpc.ChainStreamInterceptor(c.gateStream, c.auth.StreamInterceptor(), c.haltedStream, c.limitStream, c.auditStream),
		grpc.ReadBufferSize(cfg.GRPCBufferSize),
		grpc.WriteBufferSize(grpcbuf.WriteBuffer),
		grpc.SharedWriteBuffer(true),
		grpcbuf.ServerOption(),
		// Fixed windows (no BDP estimation) bound what a stream or a
		// connection has in flight; 64 KiB capped streams at a few MB/s.
		grpc.InitialWindowSize(1<<20),
		grpc.InitialConnWindowSize(4<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Liveness of every peer (operator, relaying controller, agent):
		// after pingAfter without a frame from it, ping; no answer within
		// pingTimeout closes the connection and ends its streams, so a
		// dropped kctl ends its remote exec within pingAfter+pingTimeout
		// (docs/streams.md). Presence is still the dispatcher's watchdog.
		// A connection without a stream for maxConnIdle is closed.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: pingAfter, Timeout: pingTimeout, MaxConnectionIdle: maxConnIdle}),
	)
	controllerv1.RegisterControllerServiceServer(s, &api{c: c})
	controllerv1.RegisterInternalServiceServer(s, &internalAPI{c: c})
	controllerv1.RegisterBackupServiceServer(s, &backupAPI{c: c})
	agentv1.RegisterSessionServiceServer(s, c.disp)
	deploys := c.deployService()
	deployv1.RegisterDeployServiceServer(s, deploys)
	opsv1.RegisterLifecycleServiceServer(s, &deploy.Lifecycle{Deploys: deploys})
	relay.New(relay.Config{Name: cfg.Name, Logger: c.log}, relayCluster{c: c}).Register(s)
	fleetv1.RegisterBlobServiceServer(s, &blobAPI{c: c})
	fleetv1.RegisterUpgradeServiceServer(s, &upgradeAPI{c: c})
	c.health = health.NewServer()
	healthpb.RegisterHealthServer(s, c.health)
	c.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return s
}

// serve starts serving the API and the background work: the leadership
// loop, the dispatcher and certificate renewal.
func (c *Controller) serve() {
	c.apiLn = c.apiListener()
	c.wg.Go(func() {
		if err := c.grpc.Serve(c.apiLn); err != nil {
			c.log.Error("api server stopped", "err", err)
		}
	})
	c.wg.Go(func() { c.leadershipLoop(c.ctx) })
	c.wg.Go(func() { c.disp.Run(c.ctx) })
	c.wg.Go(func() { c.renewLoop(c.ctx) })
	c.wg.Go(func() { c.watchHalt(c.ctx) })
	c.wg.Go(func() { c.recordProtocol(c.ctx) })
	c.wg.Go(func() { c.caLoop(c.ctx) })
	c.wg.Go(func() { c.membershipLoop(c.ctx) })
	c.wg.Go(func() { c.diskLoop(c.ctx) })
	c.wg.Go(func() { c.livenessLoop(c.ctx) })
	c.wg.Go(func() { c.purgeLoop(c.ctx) })
}

// checkDataDir refuses --init/--join on an initialized directory and a
// plain restart on an empty one.
func (c *Controller) checkDataDir(fresh bool) error {
	dir := c.cfg.DataDir
	st, err := os.Stat(dir)
	initialized := false
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", ErrDataDir, dir)
		}
		if _, err := os.Stat(filepath.Join(dir, nodeCertFile)); err == nil {
			initialized = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s is unreadable: %w", ErrDataDir, dir, err)
		}
		if _, err := os.ReadDir(dir); err != nil {
			return fmt.Errorf("%w: %s is unreadable: %w", ErrDataDir, dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s is unreadable: %w", ErrDataDir, dir, err)
	}
	switch {
	case fresh && initialized:
		return fmt.Errorf("%w: %s already holds a controller's state; restart it without --init/--join, or pick an empty --data-dir", ErrDataDir, dir)
	case !fresh && !initialized:
		if err != nil {
			return fmt.Errorf("%w: %s does not exist; start a new cluster with --init, or join one with --join ADDR --token TOKEN", ErrDataDir, dir)
		}
		return fmt.Errorf("%w: %s holds no controller state; start a new cluster with --init, or join one with --join ADDR --token TOKEN", ErrDataDir, dir)
	case fresh:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("%w: %w", ErrDataDir, err)
		}
	}
	return nil
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (c *Controller) path(name string) string { return filepath.Join(c.cfg.DataDir, name) }

func (c *Controller) openStore() error {
	// VerifyPeer runs on raft's goroutines, possibly before Open returns.
	var opened atomic.Pointer[raftstore.Store]
	rc := raftstore.Config{
		NodeID:    c.cfg.Name,
		DataDir:   c.cfg.DataDir,
		Advertise: c.cfg.RaftAddress,
		Listener: netlimit.Listen(c.cfg.RaftListener, netlimit.Config{
			MaxConns: maxRaftConns, MaxUnauthenticated: maxRaftConns, MaxPerSource: maxRaftConnsPerSource,
		}),
		ServerTLS: c.creds.ServerTLSForRoles(pki.RoleController),
		ClientTLS: c.creds.ClientTLSPreferOld(pki.RoleController),
		VerifyPeer: func(leaf *x509.Certificate) error {
			return c.verifyRaftPeer(opened.Load(), leaf)
		},
		Logger: c.log.With("component", "raft"),
		// Failover timing (docs/membership.md): a follower that hears
		// nothing from the leader for 500-1000 ms stands for election;
		// a leader that cannot reach a quorum for 250 ms steps down.
		HeartbeatTimeout: RaftHeartbeatTimeout, ElectionTimeout: RaftElectionTimeout, LeaderLeaseTimeout: RaftLeaderLeaseTimeout,
	}
	rc.ForceNewCluster = c.cfg.ForceNewCluster
	rc.BeforeApply = func(cmd *raftcmdv1.Command) {
		if !c.Supports(protocol.FeatureAuditChain) {
			schema.Unchain(cmd) // controllers of an older build still run
		}
	}
	if c.cfg.Raft != nil {
		c.cfg.Raft(&rc)
	}
	st, err := raftstore.Open(rc)
	if err != nil {
		return fmt.Errorf("%w: open raft state: %w", ErrDataDir, err)
	}
	opened.Store(st)
	c.store = st
	return nil
}

// Name returns the controller's name.
func (c *Controller) Name() string { return c.cfg.Name }

// Store returns the controller's replicated store (tests).
func (c *Controller) Store() *raftstore.Store { return c.store }

// IsLeader reports whether this controller is the ready Raft leader.
func (c *Controller) IsLeader() bool { return c.store.IsLeader() }

// APIAddress returns the address agents and kctl reach this controller at.
func (c *Controller) APIAddress() string { return c.cfg.APIAddress }

// Credentials returns the controller's TLS credentials (tests).
func (c *Controller) Credentials() *pki.Credentials { return c.creds }

// Close stops serving (sessions end and agents reconnect elsewhere), records
// presence and closes Raft. It is idempotent.
func (c *Controller) Close() error {
	c.closeOnce.Do(func() {
		c.health.Shutdown()
		stopped := make(chan struct{})
		go func() {
			c.grpc.GracefulStop()
			close(stopped)
		}()
		// Sessions are long-lived streams blocked in Recv: give unary
		// calls a moment, then close every connection.
		c.disp.Close()
		select {
		case <-stopped:
		case <-time.After(200 * time.Millisecond):
			c.cancel() // handlers still writing (an audit entry without quorum) give up
			c.grpc.Stop()
			<-stopped
		}
		c.cancel()
		c.wg.Wait()
		c.peers.close()
		c.closeErr = c.store.Close()
		c.log.Info("controller stopped")
	})
	return c.closeErr
}

// dispatcherCluster is the dispatcher's view of this controller: the local
// store, writes through the leader, the controllers' addresses.
type dispatcherCluster struct {
	*raftstore.Store
	c *Controller
}

var _ dispatcher.Cluster = dispatcherCluster{}

// Write applies cmd through the leader (the dispatcher's writes are
// repeatable: presence, results, facts).
func (d dispatcherCluster) Write(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	return d.c.applyRepeatable(ctx, cmd)
}

// Controllers lists every controller's API address.
func (d dispatcherCluster) Controllers() []string { return d.c.controllerAddrs() }

// Alive reports whether the controller answered a probe lately.
func (d dispatcherCluster) Alive(name string) bool { return d.c.alive(name) }

// Connections reports the API listener's connections held now, evicted and
// refused since the start (tests, benchmarks).
func (c *Controller) Connections() (held int, evicted, refused int64) { return c.apiLn.Stats() }
