// Package netlimit bounds what the network can make a server hold: a
// net.Listener that caps connections, gRPC transport credentials that give
// each TLS handshake a deadline and tell the listener who authenticated
// (with which certificate), and a token bucket.
//
// The caps are on unauthenticated connections (still in their handshake,
// or done without a client certificate), in all and per source address;
// on the connections of one client certificate; and on all connections (a
// ceiling below the open-file limit). At a cap the listener does not
// simply refuse the newcomer, which would let a flood of idle connections
// lock out an operator: it evicts the oldest unauthenticated connection
// (one still in its handshake first) of the same source at the per-source
// cap, else of the source holding the most. A flood from many addresses
// therefore cycles through its own connections while agents, operators and
// controllers keep theirs, and a lone operator's new connection keeps its
// slot. Only when every connection is authenticated and the ceiling is
// reached is a newcomer refused; a certificate over its cap fails its
// handshake.
package netlimit

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// Config configures a Listener.
type Config struct {
	// MaxConns caps the connections held in all (default 16384).
	MaxConns int
	// MaxUnauthenticated caps the unauthenticated connections in all
	// (default 4096: a flood that fills it costs a controller ~100 MiB).
	MaxUnauthenticated int
	// MaxPerSource caps the unauthenticated connections per source IP
	// address (default 256). Authenticated ones are not counted: many
	// agents may share an address (NAT).
	MaxPerSource int
	// MaxPerCert caps the connections authenticated with one client
	// certificate (default 64; with Credentials): one enrolled identity
	// cannot fill the listener with connections it is never evicted from.
	MaxPerCert int
}

// Defaults of Config.
const (
	DefaultMaxConns           = 16384
	DefaultMaxUnauthenticated = 4096
	DefaultMaxPerSource       = 256
	DefaultMaxPerCert         = 64
	// DefaultHandshakeTimeout is how long a new connection has to finish
	// its TLS handshake.
	DefaultHandshakeTimeout = 5 * time.Second
)

// connection states, in eviction order.
const (
	stateNew    = iota // accepted, handshake not finished
	stateAnon          // handshake done, no client certificate
	stateAuthed        // handshake done with a verified client certificate
)

// Listener is a net.Listener with connection caps (see the package doc).
type Listener struct {
	net.Listener
	cfg Config

	// mu guards the fields that follow and every Conn's state.
	mu      sync.Mutex
	held    int // connections
	open    int // unauthenticated connections
	bySrc   map[string]*source
	byCert  map[string]int
	evicted int64
	refused int64
}

// source is the connections of one source address, oldest first.
type source struct {
	conns []*Conn
	// open counts those not authenticated (evictable).
	open int
}

// Listen wraps ln with cfg's caps.
func Listen(ln net.Listener, cfg Config) *Listener {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxUnauthenticated <= 0 {
		cfg.MaxUnauthenticated = min(DefaultMaxUnauthenticated, cfg.MaxConns)
	}
	if cfg.MaxPerSource <= 0 {
		cfg.MaxPerSource = DefaultMaxPerSource
	}
	if cfg.MaxPerCert <= 0 {
		cfg.MaxPerCert = DefaultMaxPerCert
	}
	return &Listener{Listener: ln, cfg: cfg, bySrc: map[string]*source{}, byCert: map[string]int{}}
}

// Stats reports the connections held now and, since the start, how many
// were evicted to make room and how many new ones were refused.
func (l *Listener) Stats() (held int, evicted, refused int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held, l.evicted, l.refused
}

// Accept returns the next connection within the caps; a connection over a
// cap with nothing to evict is closed and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &Conn{Conn: nc, l: l, src: sourceOf(nc.RemoteAddr())}
		victims, ok := l.admit(c)
		for _, v := range victims {
			v.Conn.Close() // the server's own Close of v then finds it gone
		}
		if ok {
			return c, nil
		}
		nc.Close()
	}
}

// admit registers c (unauthenticated), choosing the connections to evict
// to make room; ok is false when there is no room (see the package doc).
func (l *Listener) admit(c *Conn) (victims []*Conn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if src := l.bySrc[c.src]; src != nil && src.open >= l.cfg.MaxPerSource {
		victims = append(victims, l.victimLocked(src))
	}
	if l.open >= l.cfg.MaxUnauthenticated || l.held >= l.cfg.MaxConns {
		var most *source
		for _, s := range l.bySrc {
			if most == nil || s.open > most.open {
				most = s
			}
		}
		v := l.victimLocked(most)
		if v == nil {
			l.refused++
			return victims, false
		}
		victims = append(victims, v)
	}
	src := l.bySrc[c.src]
	if src == nil {
		src = &source{}
		l.bySrc[c.src] = src
	}
	src.conns = append(src.conns, c)
	src.open++
	l.open++
	l.held++
	return victims, true
}

// victimLocked removes and returns s's oldest connection still in its
// handshake, else its oldest without a client certificate; nil if none.
func (l *Listener) victimLocked(s *source) *Conn {
	if s == nil || s.open == 0 {
		return nil
	}
	var best *Conn
	for _, c := range s.conns {
		if c.state == stateNew {
			best = c
			break
		}
		if c.state == stateAnon && best == nil {
			best = c
		}
	}
	if best == nil {
		return nil
	}
	l.evicted++
	l.dropLocked(best)
	return best
}

// dropLocked forgets c (once).
func (l *Listener) dropLocked(c *Conn) {
	if c.dropped {
		return
	}
	c.dropped = true
	s := l.bySrc[c.src]
	if i := slices.Index(s.conns, c); i >= 0 {
		s.conns = slices.Delete(s.conns, i, i+1)
	}
	if c.state != stateAuthed {
		s.open--
		l.open--
	}
	if len(s.conns) == 0 {
		delete(l.bySrc, c.src)
	}
	if c.cert != "" {
		if l.byCert[c.cert]--; l.byCert[c.cert] <= 0 {
			delete(l.byCert, c.cert)
		}
	}
	l.held--
}

func sourceOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Conn is a connection accepted by a Listener.
type Conn struct {
	net.Conn
	l   *Listener
	src string
	// state, cert and dropped are guarded by l.mu.
	state   int
	cert    string // the client certificate's key, once authenticated
	dropped bool
}

// Close closes the connection and frees its slot.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.dropLocked(c)
	c.l.mu.Unlock()
	return err
}

// Authenticated marks the connection as holding a verified client
// certificate, for listeners whose TLS is not done by Credentials (the Raft
// transport): it is evicted last.
func (c *Conn) Authenticated() { c.setState(stateAuthed) }

// authenticate marks the connection authenticated with the certificate
// cert, unless MaxPerCert connections already hold it.
func (c *Conn) authenticate(cert string) bool {
	c.l.mu.Lock()
	if !c.dropped && c.cert == "" {
		if c.l.byCert[cert] >= c.l.cfg.MaxPerCert {
			c.l.mu.Unlock()
			return false
		}
		c.l.byCert[cert]++
		c.cert = cert
	}
	c.l.mu.Unlock()
	c.setState(stateAuthed)
	return true
}

func (c *Conn) setState(st int) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.dropped || c.state == st {
		return
	}
	if src := c.l.bySrc[c.src]; src != nil {
		if c.state != stateAuthed && st == stateAuthed {
			src.open--
			c.l.open--
		}
		if c.state == stateAuthed && st != stateAuthed {
			src.open++
			c.l.open++
		}
	}
	c.state = st
}

// Credentials wraps gRPC transport credentials (TLS): a server handshake
// must finish within timeout (DefaultHandshakeTimeout when 0), and a
// connection of a Listener is marked authenticated when the peer presented
// a verified certificate, so the Listener evicts it last.
func Credentials(inner credentials.TransportCredentials, timeout time.Duration) credentials.TransportCredentials {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	return &creds{TransportCredentials: inner, timeout: timeout}
}

type creds struct {
	credentials.TransportCredentials
	timeout time.Duration
}

// ServerHandshake sets the deadline; gRPC clears it once the HTTP/2
// preface is read (set grpc.ConnectionTimeout to the same value).
func (c *creds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	_ = raw.SetDeadline(time.Now().Add(c.timeout))
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	if lc, ok := raw.(*Conn); ok {
		ti, ok := info.(credentials.TLSInfo)
		if !ok || len(ti.State.VerifiedChains) == 0 {
			lc.setState(stateAnon)
			return conn, info, nil
		}
		leaf := ti.State.VerifiedChains[0][0]
		if !lc.authenticate(leaf.Issuer.String() + "/" + leaf.SerialNumber.Text(16)) {
			conn.Close()
			return nil, nil, fmt.Errorf("netlimit: %d connections already hold this client certificate", lc.l.cfg.MaxPerCert)
		}
	}
	return conn, info, nil
}

func (c *creds) Clone() credentials.TransportCredentials {
	return &creds{TransportCredentials: c.TransportCredentials.Clone(), timeout: c.timeout}
}

// Bucket is a token bucket: Allow takes a token if one is left; tokens
// come back at rate per second up to burst.
type Bucket struct {
	rate, burst float64
	// mu guards the fields that follow.
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewBucket returns a full bucket.
func NewBucket(rate float64, burst int) *Bucket {
	return &Bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// Allow takes one token if there is one.
func (b *Bucket) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
