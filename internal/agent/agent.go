// Package agent is the program that runs on every server: it dials out to the
// controllers (it opens no port), authenticates with its own certificate,
// keeps one Session stream open and carries out the commands the controllers
// push through an exec.Runtime.
//
// On first start the agent makes its private key locally, sends a CSR with a
// join token to a controller whose CA it pins from the token's digest, and
// stores key, certificate and CA under Config.DataDir (0600). Later starts
// reuse them. The agent reconnects with capped, jittered backoff (100 ms
// doubling to 8 s, delay uniform in [0, backoff)) and rotates through every
// controller it was given or has learned of. It renews its certificate
// before it expires.
//
// Commands may be delivered more than once; the agent runs each id at most
// once and answers repeats with the recorded result (see journal.go).
package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent/exec"
	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/clock"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/grpcbuf"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/sealbox"
	"github.com/kctl-dev/kctl/internal/wirelimit"
)

var (
	// ErrTokenRejected is returned when the controller refuses the join token
	// or presents a CA that does not match the token's digest.
	ErrTokenRejected = ctlclient.ErrTokenRejected
	// ErrNoControllers is returned when no controller address is configured.
	ErrNoControllers = errors.New("agent: no controller address")
	// ErrUnreachable is returned when no controller answered the join.
	ErrUnreachable = ctlclient.ErrUnreachable
	// ErrRevoked is returned when the controllers refuse the agent's
	// certificate: it was removed with `kctl agents remove`.
	ErrRevoked = errors.New("agent: certificate revoked")
	// ErrDataDir is returned when the data directory cannot be used.
	ErrDataDir = errors.New("agent: data dir")
	// ErrRestart is returned by Run after an AgentUpgrade installed a new
	// binary: the process restarts on it (agent run does that).
	ErrRestart = errors.New("agent: restarting on an upgraded binary")
)

// Files under Config.DataDir.
const (
	keyFile         = "agent.key"
	certFile        = "agent.crt"
	caFile          = "ca.crt"
	controllersFile = "controllers.json"
	journalFile     = "journal.bin"
	// encKeyFile holds the agent's encryption key (internal/sealbox): the
	// deploy secrets sealed to this agent open only with it.
	encKeyFile = sealbox.KeyFile
)

// Config configures an Agent.
type Config struct {
	// Name is the agent's name; it must match the name its certificate was
	// issued for.
	Name string
	// DataDir holds the key, certificates and command journal.
	DataDir string
	// Controllers are controller API addresses (host:port).
	Controllers []string
	// Token is the join token, needed only on first start.
	Token string
	// Runtime carries out operations.
	Runtime exec.Runtime
	// Version is reported to the controller.
	Version string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// DialTimeout bounds connecting to one controller (default 5s).
	DialTimeout time.Duration
	// MaxBackoff caps the reconnect backoff (default 8s).
	MaxBackoff time.Duration
	// BufferSize sets the gRPC read buffer size (0: 4 KiB). The write
	// buffer is grpcbuf.WriteBuffer, shared (held only while flushing).
	BufferSize int
	// InMemory keeps the journal in memory only (benchmarks).
	InMemory bool
	// Clock drives certificate renewal (clock.Real when nil).
	Clock clock.Clock
	// AllowServerExec lets admins run commands on this host (`kctl server
	// exec`); refused otherwise.
	AllowServerExec bool
	// OnConnected, if set, is called each time a session is established
	// (agent run ends a self-upgrade's trial there).
	OnConnected func()
}

// Agent is one running agent. Create it with New, then call Run.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	creds *pki.Credentials
	jr    *journal
	// enc opens the secrets kctl sealed to this agent; nil for an agent
	// enrolled before agents had encryption keys (it refuses secrets).
	enc *sealbox.PrivateKey

	// renewNow wakes renewLoop: the cluster's CA trust differs from ours
	// (a CA rotation).
	renewNow chan struct{}
	// mu guards controllers and connected.
	mu          sync.Mutex
	controllers []string
	connected   string
	// sessions counts established sessions (tests, benchmarks).
	sessions int
	// sessionCh is signalled every time a session is established.
	sessionCh chan struct{}
	// cmds tracks running commands; Run waits for them before returning.
	cmds sync.WaitGroup
	// restart is closed when an upgrade installed a new binary.
	restart     chan struct{}
	restartOnce sync.Once
}

// New checks the configuration and loads (or, with a token, creates) the
// agent's credentials. It returns ErrTokenRejected, ErrUnreachable,
// ErrDataDir or a configuration error with a hint.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Name == "" {
		return nil, errors.New("agent: --name is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("agent: --data-dir is required")
	}
	if cfg.Runtime == nil {
		return nil, errors.New("agent: no runtime")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 8 * time.Second
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = 4 << 10
	}
	cfg.Clock = clock.Or(cfg.Clock)
	a := &Agent{cfg: cfg, log: cfg.Logger.With("agent", cfg.Name), sessionCh: make(chan struct{}, 1), restart: make(chan struct{}), renewNow: make(chan struct{}, 1)}
	if !cfg.InMemory {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: %w (check --data-dir %s)", ErrDataDir, err, cfg.DataDir)
		}
	}
	saved := a.loadControllers()
	a.controllers = ctlclient.MergeAddrs(cfg.Controllers, saved)
	if len(a.controllers) == 0 {
		return nil, fmt.Errorf("%w: pass --controller host:port[,host:port]", ErrNoControllers)
	}
	if err := a.loadOrJoin(ctx); err != nil {
		return nil, err
	}
	jr, err := openJournal(filepath.Join(cfg.DataDir, journalFile), cfg.InMemory)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	a.jr = jr
	return a, nil
}

func (a *Agent) path(name string) string { return filepath.Join(a.cfg.DataDir, name) }

func (a *Agent) loadControllers() []string {
	if a.cfg.InMemory {
		return nil
	}
	b, err := os.ReadFile(a.path(controllersFile))
	if err != nil {
		return nil
	}
	var l []string
	_ = json.Unmarshal(b, &l)
	return l
}

// learn records controller addresses announced by a controller.
func (a *Agent) learn(addrs []string) {
	if len(addrs) == 0 {
		return
	}
	a.mu.Lock()
	merged := ctlclient.MergeAddrs(a.controllers, addrs)
	changed := len(merged) != len(a.controllers)
	a.controllers = merged
	a.mu.Unlock()
	if changed && !a.cfg.InMemory {
		b, _ := json.Marshal(merged)
		_ = atomicfile.WriteFile(a.path(controllersFile), b, 0o600)
	}
}

// loadOrJoin loads the stored credentials or joins with the token.
func (a *Agent) loadOrJoin(ctx context.Context) error {
	if a.cfg.InMemory && a.creds != nil {
		return nil
	}
	certPEM, err1 := os.ReadFile(a.path(certFile))
	keyPEM, err2 := os.ReadFile(a.path(keyFile))
	caPEM, err3 := os.ReadFile(a.path(caFile))
	if err1 == nil && err2 == nil && err3 == nil {
		creds, err := pki.NewCredentials(certPEM, keyPEM, caPEM)
		if err != nil {
			return fmt.Errorf("%w: stored credentials in %s are unusable: %w (remove the directory and join again with a new token)", ErrDataDir, a.cfg.DataDir, err)
		}
		if id := creds.Identity(); id.Name != a.cfg.Name {
			return fmt.Errorf("%w: %s holds the credentials of agent %q, not %q (use another --data-dir)", ErrDataDir, a.cfg.DataDir, id.Name, a.cfg.Name)
		}
		a.creds = creds
		enc, err := sealbox.LoadKey(a.path(encKeyFile))
		switch {
		case errors.Is(err, sealbox.ErrNoKey):
			a.log.Warn("this agent was enrolled before agents had encryption keys: it refuses deploys that carry secrets until it is re-enrolled")
		case err != nil:
			return fmt.Errorf("%w: encryption key %s is unusable: %w", ErrDataDir, a.path(encKeyFile), err)
		}
		a.enc = enc
		return nil
	}
	for _, err := range []error{err1, err2, err3} {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %w", ErrDataDir, err)
		}
	}
	if a.cfg.Token == "" {
		return fmt.Errorf("agent: %s holds no credentials yet: pass --token (make one with `kctl token create --role agent`)", a.cfg.DataDir)
	}
	return a.join(ctx)
}

// join makes a key, sends a CSR with the token and stores the result.
func (a *Agent) join(ctx context.Context) error {
	tok, err := pki.ParseToken(a.cfg.Token)
	if err != nil {
		return fmt.Errorf("agent: %w (copy the whole token printed by `kctl token create --role agent`)", err)
	}
	keyPEM, err := pki.NewKey()
	if err != nil {
		return fmt.Errorf("agent: key: %w", err)
	}
	csrPEM, err := pki.NewCSR(keyPEM, pki.Identity{Role: pki.RoleAgent, Name: a.cfg.Name})
	if err != nil {
		return fmt.Errorf("agent: csr: %w", err)
	}
	// The encryption key is made (and kept) before joining, so the key the
	// CA certifies is the one on disk.
	var enc *sealbox.PrivateKey
	if a.cfg.InMemory {
		enc, err = sealbox.GenerateKey()
	} else {
		enc, _, err = sealbox.LoadOrCreateKey(a.path(encKeyFile))
	}
	if err != nil {
		return fmt.Errorf("%w: encryption key: %w", ErrDataDir, err)
	}
	resp, err := ctlclient.Join(ctx, a.controllers, tok, &controllerv1.JoinRequest{Token: a.cfg.Token, CsrPem: csrPEM, Name: a.cfg.Name, EncryptionKey: enc.PublicKey()}, a.cfg.DialTimeout)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	creds, err := pki.NewCredentials(resp.GetCertPem(), keyPEM, resp.GetCaPem())
	if err != nil {
		return fmt.Errorf("agent: controller returned unusable credentials: %w", err)
	}
	a.creds = creds
	a.enc = enc
	if !a.cfg.InMemory {
		for _, f := range []struct {
			name string
			b    []byte
		}{{keyFile, keyPEM}, {certFile, resp.GetCertPem()}, {caFile, resp.GetCaPem()}} {
			if err := atomicfile.WriteFile(a.path(f.name), f.b, 0o600); err != nil {
				return fmt.Errorf("%w: %w", ErrDataDir, err)
			}
		}
	}
	a.learn(resp.GetControllers())
	a.log.Info("joined the cluster", "cluster", resp.GetClusterId())
	return nil
}

// Identity returns the identity in the agent's certificate.
func (a *Agent) Identity() pki.Identity { return a.creds.Identity() }

// Connected returns the controller address of the current session, or "".
func (a *Agent) Connected() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected
}

// Sessions reports how many sessions the agent has established so far.
func (a *Agent) Sessions() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions
}

// SessionEstablished is signalled (without blocking) whenever a session is
// established.
func (a *Agent) SessionEstablished() <-chan struct{} { return a.sessionCh }

// Run keeps a session open until ctx is cancelled, reconnecting with capped,
// jittered backoff and renewing the certificate before it expires. It
// returns nil when ctx is cancelled and ErrRevoked when the controllers
// refuse the certificate.
func (a *Agent) Run(ctx context.Context) error {
	defer a.jr.close()
	defer func() {
		// Let running commands finish and journal their results, for a
		// while: a redelivery then answers from the journal.
		done := make(chan struct{})
		go func() {
			a.cmds.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			a.log.Warn("stopping with commands still running; they will be redelivered")
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { a.renewLoop(ctx) })
	defer wg.Wait()
	defer cancel()

	backoff := time.Duration(0)
	next := 0
	go func() {
		select {
		case <-a.restart:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-a.restart:
			return ErrRestart
		default:
		}
		a.mu.Lock()
		addrs := slices.Clone(a.controllers)
		a.mu.Unlock()
		addr := addrs[next%len(addrs)]
		next++
		established, err := a.session(ctx, addr)
		select {
		case <-a.restart:
			return ErrRestart
		default:
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrRevoked) {
			return err
		}
		if established {
			backoff = 0
		}
		if err != nil && strings.Contains(err.Error(), pki.ErrCARotated.Error()) {
			a.log.Error("the cluster's CA was rotated while this agent was offline for the whole grace period: "+
				"enrol again with a new token (an admin runs `kctl token create --role agent`; then `agent run --token TOKEN` with a new --data-dir)",
				"controller", addr)
		} else {
			a.log.Info("session ended", "controller", addr, "err", err)
		}
		// Try the next controller immediately once after an established
		// session ends; back off while nothing answers.
		if backoff == 0 && established {
			backoff = 100 * time.Millisecond
			continue
		}
		backoff = min(100*time.Millisecond+2*backoff, a.cfg.MaxBackoff)
		delay := rand.N(backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// gRPC flow-control windows of the agent's connections: large enough for
// streams at 100+ MB/s, small enough to bound memory (docs/streams.md).
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
)

// dialOptions are shared by sessions and renewals.
func (a *Agent) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(a.creds.ClientTLS(pki.RoleController))),
		grpc.WithReadBufferSize(a.cfg.BufferSize),
		grpc.WithWriteBufferSize(grpcbuf.WriteBuffer),
		grpc.WithSharedWriteBuffer(true),
		grpcbuf.DialOption(),
		// Fixed windows turn off gRPC's BDP estimation; 64 KiB capped a
		// tunnel at a few MB/s. These bound what one stream (and the whole
		// connection) may have in flight, so memory stays flat.
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second}),
	}
}

// renewLoop renews the certificate once NeedsRenewal says so, or at once
// when a controller announces CA trust that differs from ours (a CA
// rotation: the renewal brings a certificate and the bundle of the new CA).
func (a *Agent) renewLoop(ctx context.Context) {
	t := a.cfg.Clock.NewTicker(time.Minute)
	defer t.Stop()
	rotate := false
	for {
		if rotate || pki.NeedsRenewal(a.creds.Leaf(), a.cfg.Clock.Now()) {
			if err := a.renew(ctx); err != nil {
				a.log.Warn("certificate renewal failed; will retry", "err", err)
			}
		}
		rotate = false
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-a.renewNow:
			rotate = true
		}
	}
}

// checkTrust asks renewLoop to renew now when the cluster's CA trust (from
// a Welcome or HeartbeatAck) is not ours.
func (a *Agent) checkTrust(trust string) {
	if trust == "" || (trust == a.creds.TrustID() && a.creds.OnCurrentCA()) {
		return
	}
	select {
	case a.renewNow <- struct{}{}:
	default:
	}
}

func (a *Agent) renew(ctx context.Context) error {
	keyPEM, err := pki.NewKey()
	if err != nil {
		return err
	}
	csrPEM, err := pki.NewCSR(keyPEM, a.creds.Identity())
	if err != nil {
		return err
	}
	a.mu.Lock()
	addrs := slices.Clone(a.controllers)
	a.mu.Unlock()
	var last error
	for _, addr := range addrs {
		cctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
		resp, err := a.renewAt(cctx, addr, csrPEM)
		cancel()
		if err != nil {
			last = err
			continue
		}
		if err := a.creds.UpdateTrust(resp.GetCertPem(), keyPEM, resp.GetCaPem()); err != nil {
			return err
		}
		if !a.cfg.InMemory {
			if len(resp.GetCaPem()) > 0 {
				if err := atomicfile.WriteFile(a.path(caFile), resp.GetCaPem(), 0o600); err != nil {
					return err
				}
			}
			if err := atomicfile.WriteFile(a.path(keyFile), keyPEM, 0o600); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(a.path(certFile), resp.GetCertPem(), 0o600); err != nil {
				return err
			}
		}
		leaf := a.creds.Leaf()
		a.log.Info("certificate renewed", "not_after", leaf.NotAfter)
		return nil
	}
	return last
}

func (a *Agent) renewAt(ctx context.Context, addr string, csrPEM []byte) (*controllerv1.RenewCertificateResponse, error) {
	conn, err := grpc.NewClient(addr, a.dialOptions()...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return controllerv1.NewControllerServiceClient(conn).RenewCertificate(ctx, &controllerv1.RenewCertificateRequest{CsrPem: csrPEM}, grpc.WaitForReady(true))
}

// Leaf returns the agent's current certificate.
func (a *Agent) Leaf() *x509.Certificate { return a.creds.Leaf() }

// facts gathers facts for Hello, falling back to what Go knows.
func (a *Agent) facts(ctx context.Context) *agentv1.Facts {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := a.cfg.Runtime.Do(ctx, &agentv1.Operation{Op: &agentv1.Operation_GatherFacts{GatherFacts: &agentv1.GatherFacts{}}})
	f := res.GetFacts()
	if err != nil || f == nil {
		f = BasicFacts()
	}
	if f.GetAgentVersion() == "" {
		f.AgentVersion = a.cfg.Version
	}
	return wirelimit.FitFacts(f)
}
