// Command flood opens idle TCP connections to an address, from many
// loopback source addresses, and keeps them open (re-dialling the ones the
// server closes) for a while: the idle-connection flood of the Limits
// tests and benchmark. It sends nothing. Loopback only.
//
//	go run ./test/flood -addr 127.0.0.1:7443 -conns 10000 -for 30s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "", "address to flood (loopback)")
	conns := flag.Int("conns", 10000, "connections to hold")
	sources := flag.Int("sources", 100, "source addresses (127.1.x.y)")
	base := flag.Int("base", 1, "first source address's third octet (127.<base>.x.y)")
	dur := flag.Duration("for", 30*time.Second, "how long to flood")
	flag.Parse()
	if err := run(*addr, *conns, *sources, *base, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
}

func run(addr string, conns, sources, base int, dur time.Duration) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("-addr must be a loopback address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var held, dials atomic.Int64
	var wg sync.WaitGroup
	// A few dialers, each holding its share of the connections.
	const workers = 64
	for w := range workers {
		wg.Go(func() {
			n := conns / workers
			if w < conns%workers {
				n++
			}
			var mine []net.Conn
			defer func() {
				for _, c := range mine {
					c.Close()
				}
			}()
			i := w
			for ctx.Err() == nil {
				// Replace the connections the server closed.
				live := mine[:0]
				for _, c := range mine {
					if closed(c) {
						c.Close()
						held.Add(-1)
						continue
					}
					live = append(live, c)
				}
				mine = live
				for len(mine) < n && ctx.Err() == nil {
					src := i % sources
					i += workers
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, byte(base+src/250), byte(1+src%250), 1)}, Timeout: time.Second}
					c, err := d.DialContext(ctx, "tcp", addr)
					dials.Add(1)
					if err != nil {
						time.Sleep(10 * time.Millisecond)
						break
					}
					mine = append(mine, c)
					held.Add(1)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
	report := time.NewTicker(time.Second)
	defer report.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			fmt.Printf("held %d dials %d\n", held.Load(), dials.Load())
			return nil
		case <-report.C:
			fmt.Printf("held %d dials %d\n", held.Load(), dials.Load())
		}
	}
}

// closed reports whether the peer closed c (a read that does not time out).
func closed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Microsecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}
