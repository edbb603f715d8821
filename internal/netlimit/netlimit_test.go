package netlimit

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

// accepted dials n connections from src to ln and returns both ends.
func dialN(t *testing.T, l *Listener, src string, n int) (clients []net.Conn, servers []net.Conn) {
	t.Helper()
	for range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		servers = append(servers, s)
	}
	return clients, servers
}

// closedByServer reports whether the server closed c's connection.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestListener_PerSourceCapEvictsTheOldestUnauthenticated(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, Config{MaxConns: 100, MaxPerSource: 2})
	defer l.Close()
	_, a := dialN(t, l, "127.0.0.2", 1)
	a[0].(*Conn).setState(stateAuthed) // the oldest holds a certificate: not counted
	_, b := dialN(t, l, "127.0.0.2", 2)
	a = append(a, b...)
	dialN(t, l, "127.0.0.2", 1)
	if held, evicted, _ := l.Stats(); held != 3 || evicted != 1 {
		t.Fatalf("Stats = held %d evicted %d, want 3 and 1", held, evicted)
	}
	// The oldest unauthenticated connection went, not the authenticated one.
	if !a[1].(*Conn).dropped || a[2].(*Conn).dropped {
		t.Errorf("evicted: #1 %v, #2 %v; want #1 only", a[1].(*Conn).dropped, a[2].(*Conn).dropped)
	}
	if a[0].(*Conn).dropped {
		t.Errorf("the authenticated connection was evicted")
	}
	// Another source is not affected by the first one's cap.
	dialN(t, l, "127.0.0.3", 2)
	if held, _, _ := l.Stats(); held != 5 {
		t.Errorf("held = %d, want 5", held)
	}
}

func TestListener_GlobalCapEvictsAcrossSourcesAndRefusesWhenAllAuthenticated(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, Config{MaxConns: 3, MaxPerSource: 3})
	defer l.Close()
	cs, _ := dialN(t, l, "127.0.0.4", 3)
	// A newcomer from another source evicts the oldest (no certificate).
	dialN(t, l, "127.0.0.5", 1)
	if !closedByServer(cs[0]) {
		t.Errorf("the oldest connection was not closed")
	}
	if held, evicted, _ := l.Stats(); held != 3 || evicted != 1 {
		t.Fatalf("Stats = held %d evicted %d, want 3 and 1", held, evicted)
	}
	// All authenticated: a newcomer is refused.
	for _, src := range []string{"127.0.0.4", "127.0.0.5"} {
		l.mu.Lock()
		conns := slices.Clone(l.bySrc[src].conns)
		l.mu.Unlock()
		for _, c := range conns {
			c.setState(stateAuthed)
		}
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.6")}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = l.Accept() }() // closes the newcomer, waits for the next
	if !closedByServer(c) {
		t.Errorf("the newcomer was not refused")
	}
	if _, _, refused := l.Stats(); refused != 1 {
		t.Errorf("refused = %d, want 1", refused)
	}
}

func TestBucket(t *testing.T) {
	b := NewBucket(1000, 3)
	for i := range 3 {
		if !b.Allow() {
			t.Fatalf("Allow #%d = false, want true (burst 3)", i)
		}
	}
	if b.Allow() {
		t.Fatal("Allow past the burst = true")
	}
	b.last = b.last.Add(-time.Second) // a second passes
	if !b.Allow() {
		t.Fatal("Allow after the refill = false")
	}
}

// At the global cap a flood from many sources evicts its own connections,
// not a lone source's.
func TestListener_GlobalCapSparesTheLoneSource(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, Config{MaxConns: 10, MaxPerSource: 10})
	defer l.Close()
	_, lone := dialN(t, l, "127.0.0.7", 1) // the operator, still in its handshake
	for i := range 30 {
		dialN(t, l, fmt.Sprintf("127.0.1.%d", 1+i%3), 1)
	}
	if lone[0].(*Conn).dropped {
		t.Fatal("the lone source's connection was evicted by the flood")
	}
	if held, evicted, _ := l.Stats(); held != 10 || evicted != 21 {
		t.Errorf("Stats = held %d evicted %d, want 10 and 21", held, evicted)
	}
}

func TestConn_AuthenticatedIsEvictedLast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, Config{MaxConns: 1})
	defer l.Close()
	_, s := dialN(t, l, "127.0.0.8", 1)
	s[0].(interface{ Authenticated() }).Authenticated() // as the Raft transport does
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.8")}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = l.Accept() }()
	if !closedByServer(c) {
		t.Errorf("a second connection was admitted past the ceiling")
	}
	if s[0].(*Conn).dropped {
		t.Errorf("the authenticated connection was evicted")
	}
}

func TestConn_CapPerCertificate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, Config{MaxPerCert: 2})
	defer l.Close()
	_, s := dialN(t, l, "127.0.0.9", 3)
	for i, want := range []bool{true, true, false} {
		if got := s[i].(*Conn).authenticate("ca/serial-1"); got != want {
			t.Errorf("authenticate #%d with one certificate = %v, want %v", i, got, want)
		}
	}
	if !s[2].(*Conn).authenticate("ca/serial-2") {
		t.Errorf("another certificate refused")
	}
	s[0].Close()
	if got := l.byCert["ca/serial-1"]; got != 1 {
		t.Errorf("connections holding serial-1 after a close = %d, want 1", got)
	}
}
