// Package netlimit bounds what the network can make a server hold: a
// net.Listener that caps connections in all and per source address, gRPC
// transport credentials that give each TLS handshake a deadline and tell
// the listener who is authenticated, and a token bucket.
//
// When a cap is reached the listener does not simply refuse the newcomer,
// which would let a flood of idle connections lock out an operator: it
// evicts the oldest connection that has not authenticated (first one still
// in its handshake, then one that finished it without a client
// certificate), from the same source when the per-source cap is hit, from
// any source when the global cap is. Only when every connection holds a
// verified client certificate is a new one refused. A flood therefore
// cycles through its own connections while agents, operators and
// controllers keep theirs, and a new operator connection gets a slot.
package netlimit

import (
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// Config configures a Listener.
type Config struct {
	// MaxConns caps the connections held in all (default 4096).
	MaxConns int
	// MaxPerSource caps the connections held per source IP address
	// (default 256).
	MaxPerSource int
}

// Defaults of Config.
const (
	DefaultMaxConns     = 4096
	DefaultMaxPerSource = 256
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

	// mu guards the fields that follow.
	mu      sync.Mutex
	conns   map[*Conn]struct{}
	bySrc   map[string]int
	evicted int64
	refused int64
}

// Listen wraps ln with cfg's caps.
func Listen(ln net.Listener, cfg Config) *Listener {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxPerSource <= 0 {
		cfg.MaxPerSource = DefaultMaxPerSource
	}
	return &Listener{Listener: ln, cfg: cfg, conns: map[*Conn]struct{}{}, bySrc: map[string]int{}}
}

// Stats reports the connections held now and, since the start, how many
// were evicted to make room and how many new ones were refused.
func (l *Listener) Stats() (held int, evicted, refused int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns), l.evicted, l.refused
}

// Accept returns the next connection within the caps; a connection over a
// cap with nothing to evict is closed and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &Conn{Conn: nc, l: l, src: sourceOf(nc.RemoteAddr()), at: time.Now()}
		victims, ok := l.admit(c)
		for _, v := range victims {
			v.Conn.Close() // release() runs when the server closes it too
			v.release()
		}
		if ok {
			return c, nil
		}
		nc.Close()
	}
}

// admit registers c, choosing the connections to evict to make room; ok is
// false when there is no room.
func (l *Listener) admit(c *Conn) (victims []*Conn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySrc[c.src] >= l.cfg.MaxPerSource {
		v := l.victimLocked(c.src)
		if v == nil {
			l.refused++
			return nil, false
		}
		victims = append(victims, v)
		l.dropLocked(v)
	}
	if len(l.conns) >= l.cfg.MaxConns {
		v := l.victimLocked("")
		if v == nil {
			l.refused++
			return victims, false
		}
		victims = append(victims, v)
		l.dropLocked(v)
	}
	l.conns[c] = struct{}{}
	l.bySrc[c.src]++
	return victims, true
}

// victimLocked returns the oldest connection of the lowest state below
// stateAuthed (from src, or any source when src is "").
func (l *Listener) victimLocked(src string) *Conn {
	var best *Conn
	for c := range l.conns {
		if (src != "" && c.src != src) || c.state >= stateAuthed {
			continue
		}
		if best == nil || c.state < best.state || (c.state == best.state && c.at.Before(best.at)) {
			best = c
		}
	}
	if best != nil {
		l.evicted++
	}
	return best
}

func (l *Listener) dropLocked(c *Conn) {
	if _, ok := l.conns[c]; !ok {
		return
	}
	delete(l.conns, c)
	if l.bySrc[c.src]--; l.bySrc[c.src] <= 0 {
		delete(l.bySrc, c.src)
	}
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
	l     *Listener
	src   string
	at    time.Time
	state int // guarded by l.mu
	once  sync.Once
}

// Close closes the connection and frees its slot.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

func (c *Conn) release() {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.dropLocked(c)
		c.l.mu.Unlock()
	})
}

func (c *Conn) setState(s int) {
	c.l.mu.Lock()
	c.state = s
	c.l.mu.Unlock()
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
		st := stateAnon
		if ti, ok := info.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			st = stateAuthed
		}
		lc.setState(st)
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
