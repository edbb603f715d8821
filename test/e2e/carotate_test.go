package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/testenv"
)

type caStatusJSON struct {
	CADigest    string `json:"ca_digest"`
	Rotating    bool   `json:"rotating"`
	OldCADigest string `json:"old_ca_digest"`
	Pending     int    `json:"pending"`
	Holders     []struct {
		Role, Name, CA string
	} `json:"holders"`
}

func (e *env) caStatus(creds string) (caStatusJSON, error) {
	var st caStatusJSON
	out, err := e.kctlIn(e.dir, "--credentials", creds, "cluster", "ca", "status", "-o", "json")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(out), &st)
}

// issuedBy checks that dir's cert and key load with its CA bundle and the
// certificate is from the CA with digest.
func issuedBy(dir, cert, key, bundle, digest string) error {
	var pems [3][]byte
	for i, f := range []string{cert, key, bundle} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		pems[i] = b
	}
	cr, err := pki.NewCredentials(pems[0], pems[1], pems[2])
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if d := pki.Digest(cr.CACert().Raw); d != digest || !cr.OnCurrentCA() {
		return fmt.Errorf("%s/%s: from CA %s (current: %v), want %s", dir, cert, d, cr.OnCurrentCA(), digest)
	}
	return nil
}

// The real binaries, three controllers, two agents, two operators and a
// deployed app under a request loop: `kctl cluster ca rotate` re-issues
// every certificate from the new CA (the files in the data dirs and the
// operators' credentials), the agents stay connected and no request fails;
// after the grace period the old CA is retired and an operator still on it
// is refused with the advice to enrol again.
func TestE2E_CARotation(t *testing.T) {
	e := newEnv(t)
	cs := e.startCluster(3)
	hosts := e.startAgents(cs, 2)
	p := newProject(t, e)
	if out, err := e.kctlIn(p.Dir, "deploy", "--version", "v1"); err != nil {
		t.Fatalf("deploy v1: %v\n%s", err, out)
	}
	// bob uses kctl during the rotation; carol not until it is over.
	login := func(name string) string {
		tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "operator", "--name", name, "--operator-role", "deployer"))
		path := filepath.Join(e.dir, name+".yaml")
		if out, err := e.runBin(30*time.Second, "kctl", "--credentials", path, "login", "--controller", cs[1].api, "--token", tok); err != nil {
			t.Fatalf("%s login: %v\n%s", name, err, out)
		}
		return path
	}
	bob, carol := login("bob"), login("carol")
	before, err := e.caStatus(e.creds)
	must(t, err)

	l := p.startLoop()
	var stopPoll atomic.Bool
	var notConnected atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() { // the agents stay connected throughout
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for ; !stopPoll.Load(); <-tick.C {
			as, err := e.agents()
			if err == nil {
				for _, h := range hosts {
					if as[h].Status != "connected" {
						notConnected.Store(fmt.Sprintf("%s: %+v", h, as[h]))
					}
				}
			}
		}
	})

	out := e.mustKctl("cluster", "ca", "rotate", "--grace", "25s")
	if !strings.Contains(out, "new CA ") {
		t.Fatalf("rotate printed %q", out)
	}
	var st caStatusJSON
	testenv.WaitFor(t, 20*time.Second, func() error {
		if st, err = e.caStatus(e.creds); err != nil {
			return err
		}
		if !st.Rotating || st.CADigest == before.CADigest || st.OldCADigest != before.CADigest {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	newCA := st.CADigest
	// Every controller and agent re-issued from the new CA, on disk.
	testenv.WaitFor(t, 10*time.Second, func() error {
		for _, c := range cs {
			if err := issuedBy(c.dir, "node.crt", "node.key", "ca.crt", newCA); err != nil {
				return err
			}
		}
		for _, h := range hosts {
			if err := issuedBy(filepath.Join(e.dir, h), "agent.crt", "agent.key", "ca.crt", newCA); err != nil {
				return err
			}
		}
		return nil
	})
	// bob's next command, a deploy (secrets sealed to the agents' keys,
	// now certified by the new CA), works and renews his certificate.
	if out, err := e.kctlIn(p.Dir, "--credentials", bob, "deploy", "--version", "v2"); err != nil {
		t.Fatalf("bob's deploy during the grace period: %v\n%s", err, out)
	}
	for _, creds := range []string{e.creds, bob} {
		if err := operatorOnCA(creds, newCA); err != nil {
			t.Error(err)
		}
	}
	// Status lists carol only.
	if st, err = e.caStatus(e.creds); err != nil || st.Pending != 1 {
		t.Errorf("status during the grace period = %+v, %v; want carol only", st, err)
	}
	for _, h := range st.Holders {
		if (h.CA == "old") != (h.Role == "operator" && h.Name == "carol") {
			t.Errorf("status: %s %s on the %s CA", h.Role, h.Name, h.CA)
		}
	}
	// The end of the grace period.
	testenv.WaitFor(t, 30*time.Second, func() error {
		if st, err = e.caStatus(e.creds); err != nil {
			return err
		}
		if st.Rotating {
			return fmt.Errorf("still rotating: %d pending", st.Pending)
		}
		return nil
	})
	// Everyone dropped the old CA (the agents at their next heartbeat).
	testenv.WaitFor(t, 10*time.Second, func() error {
		dirs := []string{}
		for _, c := range cs {
			dirs = append(dirs, c.dir)
		}
		for _, h := range hosts {
			dirs = append(dirs, filepath.Join(e.dir, h))
		}
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "ca.crt"))
			if err != nil {
				return err
			}
			tb, err := pki.ParseTrustBundle(b)
			if err != nil || len(tb.CAs) != 1 || len(tb.Cross) != 0 || pki.Digest(tb.CA.Raw) != newCA {
				return fmt.Errorf("%s/ca.crt: %v %v", d, tb, err)
			}
		}
		return nil
	})
	// carol, offline for the whole grace period, is told to enrol again.
	out, err = e.kctlIn(e.dir, "--credentials", carol, "agents")
	if err == nil || !strings.Contains(err.Error(), "enrol again with a new token") || !strings.Contains(err.Error(), "kctl token create") {
		t.Errorf("carol after the grace period: %v\n%s", err, out)
	} else {
		t.Logf("carol after the grace period: %v", err)
	}
	if _, err := e.kctlIn(e.dir, "--credentials", bob, "agents"); err != nil {
		t.Errorf("bob after the grace period: %v", err)
	}
	stopPoll.Store(true)
	wg.Wait()
	if v := notConnected.Load(); v != nil {
		t.Errorf("an agent was not connected during the rotation: %v", v)
	}
	ok, failed, last := l.finish()
	if failed != 0 || ok == 0 {
		t.Errorf("request loop: %d ok, %d failed (last: %v)", ok, failed, last)
	}
}

// operatorOnCA checks that an operator credentials file holds a certificate
// from the CA with digest.
func operatorOnCA(path, digest string) error {
	f, err := ctlclient.LoadFile(path)
	if err != nil {
		return err
	}
	cr, err := f.Credentials()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if d := pki.Digest(cr.CACert().Raw); d != digest || !cr.OnCurrentCA() {
		return fmt.Errorf("%s: from CA %s (current: %v), want %s", path, d, cr.OnCurrentCA(), digest)
	}
	return nil
}
