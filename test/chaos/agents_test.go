package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protodelim"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// startAgents enrolls and starts n agents with the fake runtime, on the
// host (the test's clean side of every fault), each dialing every
// controller, and waits until all are connected.
func (c *cluster) startAgents(t *testing.T, n int) []string {
	t.Helper()
	out, err := c.kctl(30*time.Second, "token", "create", "--role", "agent", "--ttl", "10m", "--uses", fmt.Sprint(n))
	if err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(c.dir, "agent.token")
	if err := os.WriteFile(tok, []byte(strings.TrimSpace(out)), 0o600); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range n {
		name := fmt.Sprintf("a%d-%s", i+1, c.net.id)
		names = append(names, name)
		f, err := os.Create(filepath.Join(c.dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(c.bin, testenv.Agent), "run", "--name", name, "--data-dir", filepath.Join(c.dir, name),
			"--controller", strings.Join(c.addrs(), ","), "--token-file", tok, "--runtime", "fake")
		cmd.Dir = c.dir
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); f.Close(); close(done) }()
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		})
	}
	if err := c.waitAgents(t, names, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return names
}

// waitAgents waits until every named agent is connected.
func (c *cluster) waitAgents(t *testing.T, names []string, timeout time.Duration) error {
	return testenv.Poll(timeout, func() error {
		out, err := c.kctl(10*time.Second, "agents", "-o", "json")
		if err != nil {
			return err
		}
		var rows []struct{ Name, Status string }
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return err
		}
		st := map[string]string{}
		for _, r := range rows {
			st[r.Name] = r.Status
		}
		for _, n := range names {
			if st[n] != "connected" {
				return fmt.Errorf("agent %s is %q", n, st[n])
			}
		}
		return nil
	})
}

// commands is the command workload: one client sends Noop commands with
// unique ids to random agents through random controllers, re-sending an id
// whose outcome it does not know (SendCommand is idempotent per id).
type commands struct {
	mu   sync.Mutex
	sent map[string]string // id → agent
	// unsure are ids whose last SendCommand failed: re-sent after healing.
	unsure map[string]bool
}

func runCommands(ctx context.Context, credsPath string, addrs, agents []string, seed uint64, cmds *commands) error {
	f, err := ctlclient.LoadFile(credsPath)
	if err != nil {
		return err
	}
	creds, err := f.Credentials()
	if err != nil {
		return err
	}
	lc, err := dialAll(creds, addrs, addrs, 50, seed)
	if err != nil {
		return err
	}
	defer lc.close()
	rng := rand.New(rand.NewPCG(seed, 50))
	for n := 0; ctx.Err() == nil; n++ {
		// The controller's id format: 16 hex digits of time, 8 of
		// anything, the agent (internal/controller NewCommandID).
		agent := agents[rng.IntN(len(agents))]
		id := fmt.Sprintf("%016x-%08x.%s", time.Now().UnixNano(), n, agent)
		cmds.mu.Lock()
		cmds.sent[id] = agent
		cmds.mu.Unlock()
		err := sendCommand(lc.conns[rng.IntN(len(lc.conns))], agent, id)
		cmds.mu.Lock()
		cmds.unsure[id] = err != nil
		cmds.mu.Unlock()
		if err != nil {
			wait(ctx, 100*time.Millisecond) // pacing past an unreachable node
		}
	}
	return nil
}

func sendCommand(conn *grpc.ClientConn, agent, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := controllerv1.NewControllerServiceClient(conn).SendCommand(ctx, &controllerv1.SendCommandRequest{
		Agent: agent, Id: id, Operation: &agentv1.Operation{Op: &agentv1.Operation_Noop{Noop: &agentv1.Noop{Payload: id}}}})
	return err
}

// check re-sends the ids whose outcome was unknown, then waits until every
// command is done with the agent's answer, and reads the agents' journals:
// every id ran exactly once on its agent (journaled once per execution).
func (cmds *commands) check(t *testing.T, c *cluster, agents []string) []string {
	f, err := ctlclient.LoadFile(c.creds)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := f.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	lc, err := dialAll(creds, c.addrs(), c.addrs(), 51, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.close()
	var v []string
	cmds.mu.Lock()
	defer cmds.mu.Unlock()
	for id, unsure := range cmds.unsure {
		if !unsure {
			continue
		}
		if err := testenv.Poll(10*time.Second, func() error { return sendCommand(lc.conns[0], cmds.sent[id], id) }); err != nil {
			v = append(v, fmt.Sprintf("command %s could not be sent after healing: %v", id, err))
			if len(v) == 3 {
				return v // the same cause, surely: don't wait for each
			}
		}
	}
	if err := c.waitAgents(t, agents, 60*time.Second); err != nil {
		v = append(v, fmt.Sprintf("after healing: %v", err))
	}
	// One deadline for all: poll the ids not done yet, remembering why.
	cc := controllerv1.NewControllerServiceClient(lc.conns[0])
	why := map[string]error{}
	for id := range cmds.sent {
		why[id] = fmt.Errorf("not asked yet")
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(why) > 0 && time.Now().Before(deadline) {
		for id := range why {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := cc.GetCommand(ctx, &controllerv1.GetCommandRequest{Agent: cmds.sent[id], Id: id})
			cancel()
			r := resp.GetCommand()
			switch {
			case err != nil:
				why[id] = err
			case r.GetState() != controllerv1.CommandState_COMMAND_STATE_DONE:
				why[id] = fmt.Errorf("state %s", r.GetState())
			case !r.GetResult().GetOk() || r.GetResult().GetDetail() != id:
				why[id] = fmt.Errorf("result %v", r.GetResult())
			default:
				delete(why, id)
			}
		}
		if len(why) > 0 {
			wait(context.Background(), 200*time.Millisecond) // poll interval
		}
	}
	for id, err := range why {
		v = append(v, fmt.Sprintf("command %s on %s not done after healing: %v", id, cmds.sent[id], err))
	}
	ran := map[string]int{}
	for _, a := range agents {
		b, err := os.ReadFile(filepath.Join(c.dir, a, "journal.bin"))
		if err != nil {
			v = append(v, fmt.Sprintf("agent %s journal: %v", a, err))
			continue
		}
		for r := bufio.NewReader(bytes.NewReader(b)); ; {
			var cr agentv1.CommandResult
			if protodelim.UnmarshalFrom(r, &cr) != nil {
				break
			}
			if _, ok := cmds.sent[cr.GetId()]; ok {
				ran[a+"/"+cr.GetId()]++
			}
		}
	}
	for id, agent := range cmds.sent {
		if n := ran[agent+"/"+id]; n != 1 {
			v = append(v, fmt.Sprintf("command %s ran %d times on %s, want once", id, n, agent))
		}
	}
	return v
}
