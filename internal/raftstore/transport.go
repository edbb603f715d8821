package raftstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// handshakeTimeout bounds the TLS handshake of an incoming raft connection.
const handshakeTimeout = 10 * time.Second

// tlsStreamLayer is a raft.StreamLayer carrying raft traffic over mutual TLS.
// Incoming connections are handshaken off the Accept path (a slow or hostile
// client cannot stall the listener) and handed to raft only once the peer's
// certificate chains to the cluster CA and passes verify.
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	verify    func(*x509.Certificate) error
	logger    *slog.Logger

	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once

	// mu guards pending (raw connections still handshaking) and live
	// (authenticated connections, both directions).
	mu      sync.Mutex
	pending map[net.Conn]struct{}
	live    map[*trackedConn]struct{}
	wg      sync.WaitGroup

	// rejectMu guards the rejection log's rate: a flood of bad
	// connections logs one line per rejectLogEvery with a count, not one
	// per connection.
	rejectMu      sync.Mutex
	rejectLast    time.Time
	rejectDropped int
}

const rejectLogEvery = 10 * time.Second

// logReject logs a rejected inbound connection, at most once per
// rejectLogEvery (with how many went unlogged since).
func (s *tlsStreamLayer) logReject(msg string, remote net.Addr, err error) {
	s.rejectMu.Lock()
	if time.Since(s.rejectLast) < rejectLogEvery {
		s.rejectDropped++
		s.rejectMu.Unlock()
		return
	}
	dropped := s.rejectDropped
	s.rejectLast, s.rejectDropped = time.Now(), 0
	s.rejectMu.Unlock()
	s.logger.Warn(msg, "remote", remote.String(), "err", err, "more_rejected_unlogged", dropped)
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// NewTLSStreamLayer returns a raft.StreamLayer that accepts raft connections
// on ln and dials peers, both over mutual TLS.
//
// server must present this node's certificate (Certificates or
// GetCertificate) and trust the cluster CA in ClientCAs; the layer forces
// tls.RequireAndVerifyClientCert and TLS 1.2 or newer. client must present
// this node's certificate (Certificates or GetClientCertificate) and trust
// the cluster CA in RootCAs. If client.ServerName is empty, the peer's
// certificate is verified against RootCAs without a host name check, because
// raft addresses are often IP:port and the peer's identity is its
// controller certificate, which verify checks. Using the callbacks
// (GetCertificate, GetClientCertificate, GetConfigForClient) lets certificates
// be renewed without a restart.
//
// verify, if not nil, is called with the verified leaf certificate of every
// peer, in both directions; an error drops the connection. Use it to require
// the controller role and refuse revoked certificates. Connections already
// established are not re-checked.
//
// advertise is the address peers dial to reach this node (ln.Addr() if nil).
func NewTLSStreamLayer(ln net.Listener, advertise net.Addr, server, client *tls.Config, verify func(*x509.Certificate) error) raft.StreamLayer {
	return newTLSStreamLayer(ln, advertise, server, client, verify, nil)
}

func newTLSStreamLayer(ln net.Listener, advertise net.Addr, server, client *tls.Config, verify func(*x509.Certificate) error, logger *slog.Logger) *tlsStreamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &tlsStreamLayer{
		ln:        ln,
		advertise: advertise,
		server:    serverTLS(server),
		client:    clientTLS(client),
		verify:    verify,
		logger:    logger,
		conns:     make(chan net.Conn),
		closed:    make(chan struct{}),
		pending:   make(map[net.Conn]struct{}),
		live:      make(map[*trackedConn]struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

func serverTLS(c *tls.Config) *tls.Config {
	if c == nil {
		c = &tls.Config{}
	}
	c = c.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

func clientTLS(c *tls.Config) *tls.Config {
	if c == nil {
		c = &tls.Config{}
	}
	c = c.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.ServerName == "" && !c.InsecureSkipVerify {
		roots, next := c.RootCAs, c.VerifyConnection
		c.InsecureSkipVerify = true // replaced by the chain check below
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate", ErrPeerRejected)
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				return fmt.Errorf("%w: %w", ErrPeerRejected, err)
			}
			if next != nil {
				return next(cs)
			}
			return nil
		}
	}
	return c
}

func (s *tlsStreamLayer) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary error (e.g. too many open files): back off.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger.Warn("raft listener accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.closed:
				return
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		s.pending[raw] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.handshake(raw)
	}
}

func (s *tlsStreamLayer) handshake(raw net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.pending, raw)
		s.mu.Unlock()
	}()
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	conn := tls.Server(raw, s.server)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		s.logReject("raft peer rejected: TLS handshake failed", raw.RemoteAddr(), err)
		_ = raw.Close()
		return
	}
	if err := s.check(conn.ConnectionState()); err != nil {
		s.logReject("raft peer rejected", raw.RemoteAddr(), err)
		_ = conn.Close()
		return
	}
	// A connection-capping listener (internal/netlimit) evicts an
	// authenticated peer last.
	if a, ok := raw.(interface{ Authenticated() }); ok {
		a.Authenticated()
	}
	_ = raw.SetDeadline(time.Time{})
	tc := s.track(conn)
	select {
	case s.conns <- tc:
	case <-s.closed:
		_ = tc.Close()
	}
}

// check requires a verified chain (whatever the tls.Config callbacks did) and
// runs verify on the leaf.
func (s *tlsStreamLayer) check(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no verified client certificate", ErrPeerRejected)
	}
	if s.verify != nil {
		if err := s.verify(cs.PeerCertificates[0]); err != nil {
			return fmt.Errorf("%w: %w", ErrPeerRejected, err)
		}
	}
	return nil
}

// Accept returns the next authenticated raft connection.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes the listener, aborts pending handshakes and
// closes every connection it made or accepted: raft's transport leaves its
// pooled connections open on Close, and each would keep a handler
// goroutine, here and at the peer, until the process exits.
func (s *tlsStreamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.ln.Close()
		s.mu.Lock()
		for c := range s.pending {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.closeLive()
	})
	return err
}

// Addr is the advertised address.
func (s *tlsStreamLayer) Addr() net.Addr { return s.advertise }

// Dial opens an authenticated connection to a raft peer.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", string(address), s.client)
	if err != nil {
		return nil, fmt.Errorf("raftstore: dial %s: %w", address, err)
	}
	cs := conn.ConnectionState()
	if s.verify != nil {
		if err := s.verify(cs.PeerCertificates[0]); err != nil {
			_ = conn.Close()
			s.logger.Warn("raft peer rejected", "remote", string(address), "err", err)
			return nil, fmt.Errorf("raftstore: dial %s: %w: %w", address, ErrPeerRejected, err)
		}
	}
	return s.track(conn), nil
}

// trackedConn is an authenticated connection the layer can close on demand.
type trackedConn struct {
	net.Conn
	s    *tlsStreamLayer
	once sync.Once
}

func (s *tlsStreamLayer) track(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	s.live[tc] = struct{}{}
	s.mu.Unlock()
	return tc
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.live, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// closeLive closes every authenticated connection, so peers must dial and be
// verified again.
func (s *tlsStreamLayer) closeLive() int {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// stringAddr is a net.Addr for an advertised host:port that may be a name.
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }
