// Package relay carries operator streams — container logs and exec
// sessions — between kctl and the agents, through the controllers
// (docs/streams.md):
//
//	kctl ⇄ StreamService (any controller)
//	     ⇄ RelayService (the controller holding the agent's session, when that
//	       is another one)
//	     ⇄ TunnelService (the agent dials it when its session says OpenTunnel)
//
// Every hop is one gRPC stream and the pumps hold one message at a time, so
// gRPC flow control carries a slow reader's backpressure back to the
// container; nothing buffers without bound. A stream ends as a whole: when
// the operator, a controller or the agent goes away, every hop's context
// ends and the agent kills the remote process.
//
// The package sees its controller only through Cluster; tests use a fake.
package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

// ErrNotHeld is returned by Cluster.OpenTunnel when this controller holds
// no session of the agent.
var ErrNotHeld = errors.New("relay: agent session not held here")

// Cluster is what the relay needs of its controller.
type Cluster interface {
	// OpenTunnel asks the agent's session on this controller to dial a
	// Tunnel for id; ErrNotHeld when this controller holds no session of
	// the agent.
	OpenTunnel(agent, id string) error
	// Holder names the controller holding the agent's session ("" when
	// the agent is not connected).
	Holder(agent string) string
	// Peer returns a connection to the named controller.
	Peer(name string) (grpc.ClientConnInterface, error)
	// Audit records an audit entry (best effort).
	Audit(ctx context.Context, e *deployv1.AuditEntry)
}

// Config configures a Server.
type Config struct {
	// Name is this controller's name.
	Name string
	// OpenTimeout bounds the wait for an agent's Tunnel (default 10s).
	OpenTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server serves StreamService, RelayService and TunnelService on one
// controller. It starts nothing; streams live as long as their RPCs.
type Server struct {
	cfg Config
	cl  Cluster
	log *slog.Logger

	// mu guards waiting.
	mu sync.Mutex
	// waiting holds the streams waiting for their agent's Tunnel, by id.
	waiting map[string]*waiter
}

// waiter is one stream waiting for its agent's Tunnel.
type waiter struct {
	agent string
	// ch receives the tunnel; it has room for one, sent under Server.mu.
	ch chan *tunnel
}

// New returns a Server for the controller cfg.Name.
func New(cfg Config, cl Cluster) *Server {
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, cl: cl, log: cfg.Logger, waiting: map[string]*waiter{}}
}

// Register registers the three services on s.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	streamv1.RegisterStreamServiceServer(g, streamAPI{s: s})
	streamv1.RegisterRelayServiceServer(g, relayAPI{s: s})
	streamv1.RegisterTunnelServiceServer(g, tunnelAPI{s: s})
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
