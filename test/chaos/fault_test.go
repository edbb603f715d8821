package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"syscall"
	"time"
)

// The fault kinds a scenario draws from; "mixed" draws each fault from all
// the others.
const (
	faultKill    = "kill"    // kill -9 one node, restart it after the hold
	faultPause   = "pause"   // SIGSTOP one node, SIGCONT after the hold
	faultIsolate = "isolate" // one node cut from the others, both ways (the 1|2 majority/minority split)
	faultBridge  = "bridge"  // two nodes cut from each other, the third sees both
	faultAsym    = "asym"    // one node's packets to the others dropped, or theirs to it: one way only
	faultLoss    = "loss"    // every node drops a share of the packets it receives
	faultSplit   = "split"   // a minority (2 of 5 nodes in a split scenario) cut from the majority
	faultMixed   = "mixed"
)

var faultKinds = []string{faultKill, faultPause, faultIsolate, faultBridge, faultAsym, faultLoss, faultSplit}

// clusterSize is how many controllers a scenario of a kind runs: five for
// a 2 | 3 split, else three.
func clusterSize(kind string) int {
	if kind == faultSplit {
		return 5
	}
	return 3
}

// nemesis injects faults of one kind, drawn from its seeded source, until
// ctx ends, then heals everything. Every step goes to the schedule log.
type nemesis struct {
	c    *cluster
	kind string
	rng  *rand.Rand
	log  io.Writer
	t0   time.Time
}

func (n *nemesis) logf(format string, args ...any) {
	fmt.Fprintf(n.log, "%8.3fs  %s\n", time.Since(n.t0).Seconds(), fmt.Sprintf(format, args...))
}

// run alternates a fault held 1-4s with a healthy pause of 1-3s.
func (n *nemesis) run(ctx context.Context) {
	for ctx.Err() == nil {
		kind := n.kind
		if kind == faultMixed {
			kind = faultKinds[n.rng.IntN(len(faultKinds))]
		}
		hold := time.Duration(1000+n.rng.IntN(3000)) * time.Millisecond
		calm := time.Duration(1000+n.rng.IntN(2000)) * time.Millisecond
		heal := n.inject(kind)
		wait(ctx, hold)
		heal()
		wait(ctx, calm)
	}
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// inject applies one fault and returns what undoes it.
func (n *nemesis) inject(kind string) (heal func()) {
	c, nodes := n.c, n.c.nodes
	// Half the faults aim at the leader (a paused leader that wakes up
	// believing it still leads; an isolated leader): the draw is made
	// either way, so a seed's schedule stays the same.
	pick := nodes[n.rng.IntN(len(nodes))]
	if n.rng.IntN(2) == 0 {
		if l := c.leader(); l != nil {
			pick = l
		}
	}
	others := func(x *node) []*node {
		var o []*node
		for _, nd := range nodes {
			if nd != x {
				o = append(o, nd)
			}
		}
		return o
	}
	netHeal := func() {
		if err := c.net.heal(); err != nil {
			n.logf("heal: %v", err)
		}
		n.logf("heal network")
	}
	check := func(err error) {
		if err != nil {
			n.logf("fault failed: %v", err)
		}
	}
	switch kind {
	case faultKill:
		n.logf("kill -9 %s", pick.name)
		c.kill(pick)
		return func() {
			n.logf("restart %s", pick.name)
			check(c.start(pick))
		}
	case faultPause:
		n.logf("SIGSTOP %s", pick.name)
		c.signal(pick, syscall.SIGSTOP)
		return func() {
			n.logf("SIGCONT %s", pick.name)
			c.signal(pick, syscall.SIGCONT)
		}
	case faultIsolate:
		n.logf("isolate %s", pick.name)
		for _, o := range others(pick) {
			check(c.net.drop(pick.net, o.net, true, true))
		}
		return netHeal
	case faultBridge:
		o := others(pick)
		a, b := o[0], o[1]
		n.logf("bridge: %s and %s cut, %s sees both", a.name, b.name, pick.name)
		check(c.net.drop(a.net, b.net, true, true))
		return netHeal
	case faultAsym:
		out := n.rng.IntN(2) == 0
		if out {
			n.logf("asym: %s's packets to the others dropped", pick.name)
		} else {
			n.logf("asym: the others' packets to %s dropped", pick.name)
		}
		for _, o := range others(pick) {
			check(c.net.drop(pick.net, o.net, out, !out))
		}
		return netHeal
	case faultSplit:
		// The minority: pick and, drawn from the rest, up to (n-1)/2 - 1 more.
		minority := []*node{pick}
		rest := others(pick)
		n.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		minority = append(minority, rest[:(len(nodes)-1)/2-1]...)
		majority := rest[(len(nodes)-1)/2-1:]
		var names []string
		for _, m := range minority {
			names = append(names, m.name)
			for _, o := range majority {
				check(c.net.drop(m.net, o.net, true, true))
			}
		}
		n.logf("split: minority %v cut from the majority", names)
		return netHeal
	case faultLoss:
		p := 0.2 + 0.3*n.rng.Float64()
		n.logf("loss %.2f on every node", p)
		for _, nd := range nodes {
			check(c.net.loss(nd.net, p))
		}
		return netHeal
	}
	panic("unknown fault " + kind)
}

// healAll undoes every fault: network rules flushed, paused nodes
// continued, killed nodes restarted.
func (n *nemesis) healAll() {
	if err := n.c.net.heal(); err != nil {
		n.logf("heal: %v", err)
	}
	for _, nd := range n.c.nodes {
		n.c.signal(nd, syscall.SIGCONT)
		if !nd.running() {
			n.c.kill(nd) // reap an exited process
			n.logf("restart %s", nd.name)
			if err := n.c.start(nd); err != nil {
				n.logf("restart %s: %v", nd.name, err)
			}
		}
	}
	n.logf("healed all")
}
