package testenv

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Ports are picked below Linux's ephemeral range (32768–60999 by default):
// a port from `:0` is ephemeral, and between the check and the test's own
// Listen any process's outgoing connection may take it ("address already
// in use" on a loaded machine). A random port under 32768 that binds now is
// taken by no outgoing connection; each is handed out once per process.
const portLow, portHigh = 20000, 32767

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call,
// outside the ephemeral range and not returned before in this process.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow+1)
		if given[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		given[p] = true
		return p
	}
	t.Fatalf("FreePort: no free port in %d–%d", portLow, portHigh)
	return 0
}

// FreeAddr returns "127.0.0.1:<FreePort>".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
