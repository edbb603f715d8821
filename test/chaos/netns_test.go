package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kctl-dev/kctl/internal/testenv"
)

// network is a bridge on the host with one network namespace per node,
// each joined to the bridge by a veth pair. The host has the bridge's first
// address, so the test's clients reach every node; faults are iptables
// rules inside a node's namespace, which leave the host's rules alone.
type network struct {
	t *testing.T
	// id makes every name of this run unique (bridge, veths, namespaces).
	id     string
	bridge string
	// prefix is the /24's first three octets ("10.201.7").
	prefix string
	hostIP string
	nodes  []*netNode
}

type netNode struct {
	name string
	ns   string
	ip   string
	veth string
}

// run runs a command, failing with its output.
func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// requireRoot skips (or under KCTL_E2E=1 fails) unless the test can make
// namespaces and iptables rules.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the chaos suite needs root (network namespaces, iptables)")
	}
	testenv.Command(t, "ip")
	testenv.Command(t, "iptables")
}

// newNetwork makes the bridge and a namespace per name; all of it is
// removed in cleanup, whatever happened.
func newNetwork(t *testing.T, names ...string) *network {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	n := &network{t: t, id: hex.EncodeToString(b)[:5]}
	n.bridge = "kcb" + n.id
	// A /24 in 10.128.0.0/9 not routed on this host yet.
	routes, _ := exec.Command("ip", "-4", "route").Output()
	for {
		n.prefix = fmt.Sprintf("10.%d.%d", 128+int(b[0])%100, b[1])
		if !strings.Contains(string(routes), n.prefix+".") {
			break
		}
		_, _ = rand.Read(b)
	}
	n.hostIP = n.prefix + ".1"
	// A test process killed outright (go test's -timeout) runs no cleanup:
	// its network is removed by the next run, found by the owner file.
	sweepDead(t)
	if err := os.MkdirAll(ownersDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ownersDir, n.id), []byte(fmt.Sprintf("%d %d", os.Getpid(), len(names))), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.destroy)
	must := func(args ...string) {
		t.Helper()
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("ip", "link", "add", n.bridge, "type", "bridge")
	must("ip", "addr", "add", n.hostIP+"/24", "dev", n.bridge)
	must("ip", "link", "set", n.bridge, "up")
	// With br_netfilter (Docker loads it) bridged frames cross the host's
	// FORWARD chain, whose policy Docker sets to DROP: accept ours.
	must("iptables", "-I", "FORWARD", "1", "-i", n.bridge, "-o", n.bridge, "-j", "ACCEPT")
	for i, name := range names {
		nd := &netNode{name: name, ns: fmt.Sprintf("kctl-chaos-%s-%s", n.id, name), ip: fmt.Sprintf("%s.%d", n.prefix, 10+i),
			veth: fmt.Sprintf("kc%sh%d", n.id, i)}
		n.nodes = append(n.nodes, nd)
		must("ip", "netns", "add", nd.ns)
		must("ip", "link", "add", nd.veth, "type", "veth", "peer", "name", "eth0", "netns", nd.ns)
		must("ip", "link", "set", nd.veth, "master", n.bridge)
		must("ip", "link", "set", nd.veth, "up")
		must("ip", "-n", nd.ns, "addr", "add", nd.ip+"/24", "dev", "eth0")
		must("ip", "-n", nd.ns, "link", "set", "eth0", "up")
		must("ip", "-n", nd.ns, "link", "set", "lo", "up")
	}
	return n
}

func (n *network) node(name string) *netNode {
	for _, nd := range n.nodes {
		if nd.name == name {
			return nd
		}
	}
	n.t.Fatalf("no node %s", name)
	return nil
}

// ownersDir records each live network: a file named by its id holding the
// owning test process's pid and its node count.
const ownersDir = "/run/kctl-chaos"

// destroy removes what newNetwork made, ignoring what is already gone.
func (n *network) destroy() {
	removeNetwork(n.id, len(n.nodes))
}

// removeNetwork removes the bridge, veths, namespaces, FORWARD rule and
// owner file of network id.
func removeNetwork(id string, nodes int) {
	for i := range nodes {
		_ = run("ip", "link", "del", fmt.Sprintf("kc%sh%d", id, i)) // takes its peer along
		_ = run("ip", "netns", "del", fmt.Sprintf("kctl-chaos-%s-c%d", id, i+1))
	}
	bridge := "kcb" + id
	_ = run("iptables", "-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT")
	_ = run("ip", "link", "del", bridge)
	_ = os.Remove(filepath.Join(ownersDir, id))
}

// sweepDead removes the networks whose owning process is gone.
func sweepDead(t *testing.T) {
	entries, _ := os.ReadDir(ownersDir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(ownersDir, e.Name()))
		if err != nil {
			continue
		}
		var pid, nodes int
		if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &nodes); err != nil || pid <= 0 || nodes <= 0 || nodes > 9 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || err != syscall.ESRCH {
			continue // alive (or not ours to judge)
		}
		t.Logf("removing the network of dead chaos run %s (pid %d)", e.Name(), pid)
		removeNetwork(e.Name(), nodes)
	}
}

// ipt runs iptables inside a node's namespace.
func (n *network) ipt(nd *netNode, args ...string) error {
	return run(append([]string{"ip", "netns", "exec", nd.ns, "iptables", "-w"}, args...)...)
}

// drop drops, inside from's namespace, every packet from's node sends to
// to's (out) or receives from it (in).
func (n *network) drop(from, to *netNode, out, in bool) error {
	if out {
		if err := n.ipt(from, "-A", "OUTPUT", "-d", to.ip, "-j", "DROP"); err != nil {
			return err
		}
	}
	if in {
		if err := n.ipt(from, "-A", "INPUT", "-s", to.ip, "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

// loss drops a share p of the packets a node receives from other nodes
// (the host's clients keep a clean path).
func (n *network) loss(nd *netNode, p float64) error {
	return n.ipt(nd, "-A", "INPUT", "!", "-s", n.hostIP, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%.2f", p), "-j", "DROP")
}

// heal flushes every rule in every namespace.
func (n *network) heal() error {
	for _, nd := range n.nodes {
		if err := n.ipt(nd, "-F"); err != nil {
			return err
		}
	}
	return nil
}
