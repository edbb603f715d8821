package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// ciSeeds are the short run of make test: one scenario of each fault kind
// (see kindOf), about 20s each.
var ciSeeds = []uint64{0, 1, 2, 3, 4, 5, 6, 7}

// kindOf is the fault kind a seed runs: seeds cycle through the kinds, so
// a range of seeds covers every kind evenly.
func kindOf(seed uint64) string {
	all := append(slices.Clone(faultKinds), faultMixed)
	return all[seed%uint64(len(all))]
}

// TestChaos runs one scenario per seed: KCTL_CHAOS_SEED (first seed) and
// KCTL_CHAOS_RUNS (how many consecutive seeds) choose them, else ciSeeds.
// KCTL_CHAOS_KIND forces a fault kind, KCTL_CHAOS_DURATION the workload's
// length (default 15s). KCTL_CHAOS_REPORT appends a JSON line per scenario
// to that file (docs/reliability.md's table is made from it).
func TestChaos(t *testing.T) {
	testenv.SkipShort(t)
	requireRoot(t)
	seeds := ciSeeds
	if s := os.Getenv("KCTL_CHAOS_SEED"); s != "" {
		first, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KCTL_CHAOS_SEED=%q: %v", s, err)
		}
		runs := uint64(1)
		if r := os.Getenv("KCTL_CHAOS_RUNS"); r != "" {
			if runs, err = strconv.ParseUint(r, 10, 64); err != nil {
				t.Fatalf("KCTL_CHAOS_RUNS=%q: %v", r, err)
			}
		}
		seeds = nil
		for i := range runs {
			seeds = append(seeds, first+i)
		}
	}
	dur := 15 * time.Second
	if d := os.Getenv("KCTL_CHAOS_DURATION"); d != "" {
		var err error
		if dur, err = time.ParseDuration(d); err != nil {
			t.Fatalf("KCTL_CHAOS_DURATION=%q: %v", d, err)
		}
	}
	bin := testenv.Binaries(t)
	for _, seed := range seeds {
		kind := kindOf(seed)
		if k := os.Getenv("KCTL_CHAOS_KIND"); k != "" {
			kind = k
		}
		t.Run(fmt.Sprintf("seed=%d/%s", seed, kind), func(t *testing.T) {
			scenario(t, bin, seed, kind, dur)
		})
	}
}

// scenarioResult is one line of KCTL_CHAOS_REPORT.
type scenarioResult struct {
	Seed uint64         `json:"seed"`
	Kind string         `json:"kind"`
	Ops  map[string]int `json:"ops"`
	// Linearizable is porcupine's verdict: Ok, Illegal or Unknown (timed out).
	Linearizable string   `json:"linearizable"`
	Violations   []string `json:"violations"`
	Artifacts    string   `json:"artifacts,omitempty"`
	Commit       string   `json:"commit"`
}

func scenario(t *testing.T, bin string, seed uint64, kind string, dur time.Duration) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("kctl-chaos-seed%d-", seed))
	if err != nil {
		t.Fatal(err)
	}
	res := scenarioResult{Seed: seed, Kind: kind, Commit: testenv.TestVersion()}
	defer func() {
		if t.Failed() || os.Getenv("KCTL_CHAOS_KEEP") == "1" {
			res.Artifacts = dir
			t.Logf("artifacts (logs, schedule, history, linearizability.html): %s\nreplay: make chaos SEED=%d RUNS=1 KIND=%s", dir, seed, kind)
		} else {
			os.RemoveAll(dir)
		}
		if p := os.Getenv("KCTL_CHAOS_REPORT"); p != "" {
			if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
				b, _ := json.Marshal(res)
				f.Write(append(b, '\n'))
				f.Close()
			}
		}
	}()
	violation := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		res.Violations = append(res.Violations, msg)
		t.Errorf("violation: %s", msg)
	}

	c := newCluster(t, bin, dir, clusterSize(kind))
	var names []string
	for _, nd := range c.nodes {
		names = append(names, nd.name)
	}
	schedule, err := os.Create(filepath.Join(dir, "schedule.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer schedule.Close()
	h := &history{t0: time.Now()}
	nem := &nemesis{c: c, kind: kind, rng: rand.New(rand.NewPCG(seed, 0x6b63746c)), log: schedule, t0: h.t0}
	nem.logf("seed %d kind %s duration %s", seed, kind, dur)

	agents := c.startAgents(t, 2)
	cmds := &commands{sent: map[string]string{}, unsure: map[string]bool{}}

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	nemDone, cmdDone := make(chan struct{}), make(chan error, 1)
	go func() { defer close(nemDone); nem.run(ctx) }()
	go func() { cmdDone <- runCommands(ctx, c.creds, c.addrs(), agents, seed, cmds) }()
	if err := runWorkload(ctx, c.creds, c.addrs(), names, 4, seed, h); err != nil {
		t.Fatal(err)
	}
	<-nemDone
	if err := <-cmdDone; err != nil {
		t.Fatal(err)
	}
	nem.healAll()
	c.waitHealthy(90 * time.Second)
	nem.logf("cluster healthy")

	// After healing, every node answers a status: part of the history.
	finalStatus(t, c, names, h)
	if err := h.save(filepath.Join(dir, "history.jsonl")); err != nil {
		t.Error(err)
	}
	res.Ops = h.counts()
	t.Logf("seed %d %s: %v", seed, kind, res.Ops)
	if res.Ops["acquire/ok"] == 0 || res.Ops["release/ok"] == 0 {
		violation("the workload made no progress: %v", res.Ops)
	}

	// Linearizability of the lock: the plain stale reads first (cheap, and
	// they say what went wrong), then porcupine's search.
	stale := h.staleReads()
	for i, s := range stale {
		if i == 5 {
			violation("... and %d more stale reads", len(stale)-5)
			break
		}
		violation("%s", s)
	}
	model := lockModel.ToModel()
	result, info := porcupine.CheckOperationsVerbose(model, h.operations(), 2*time.Minute)
	res.Linearizable = string(result)
	switch result {
	case porcupine.Illegal:
		_ = porcupine.VisualizePath(model, info, filepath.Join(dir, "linearizability.html"))
		violation("the lock history is not linearizable (see linearizability.html)")
	case porcupine.Unknown:
		t.Logf("linearizability check timed out: undecided")
	}

	// The audit: identical on every node, no gap, no duplicate; each
	// acquire that succeeded is in it once, each refused one not at all.
	for _, v := range checkAudit(t, c, h) {
		violation("%s", v)
	}

	// Agent commands: every one done after healing, each run exactly once.
	res.Ops["command/sent"] = len(cmds.sent)
	t.Logf("seed %d %s: %d agent commands sent", seed, kind, len(cmds.sent))
	for i, v := range cmds.check(t, c, agents) {
		if i == 10 {
			violation("... and more command violations")
			break
		}
		violation("%s", v)
	}
}

// finalStatus asks every node for the lock and records the answers.
func finalStatus(t *testing.T, c *cluster, names []string, h *history) {
	f, err := ctlclient.LoadFile(c.creds)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := f.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	lc, err := dialAll(creds, c.addrs(), names, 99, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.close()
	for i := range lc.conns {
		cl := deployv1.NewDeployServiceClient(lc.conns[i])
		o := op{Client: 99, In: lockInput{Op: "status", Node: names[i]}, Call: h.now()}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := cl.LockStatus(ctx, &deployv1.LockStatusRequest{Service: lockService, Destination: lockDest})
		cancel()
		o.Out = classify(err, 0, "")
		if err == nil {
			o.Out.Holder = resp.GetLock().GetMessage()
		}
		o.Return = h.now()
		h.add(o)
	}
}

// auditOf reads a node's whole audit.
func auditOf(creds *pki.Credentials, addr string) ([]*deployv1.AuditEntry, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(creds.ClientTLS(pki.RoleController))))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := deployv1.NewDeployServiceClient(conn).Audit(ctx, &deployv1.AuditRequest{}, grpc.MaxCallRecvMsgSize(64<<20))
	if err != nil {
		return nil, err
	}
	return resp.GetEntries(), nil
}

// checkAudit compares the audit of every node and the history.
func checkAudit(t *testing.T, c *cluster, h *history) []string {
	f, err := ctlclient.LoadFile(c.creds)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := f.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	var audits [][]*deployv1.AuditEntry
	// Reads are linearizable, so every node returns the same audit at once
	// once nothing writes; poll only to ride out a node still catching up
	// after its restart.
	var diff string
	testenv.Poll(30*time.Second, func() error {
		audits, diff = nil, ""
		for _, nd := range c.nodes {
			a, err := auditOf(creds, nd.api)
			if err != nil {
				return fmt.Errorf("%s: %w", nd.name, err)
			}
			audits = append(audits, a)
		}
		for i := 1; i < len(audits); i++ {
			if d := auditDiff(audits[0], audits[i]); d != "" {
				diff = fmt.Sprintf("%s and %s differ: %s", c.nodes[0].name, c.nodes[i].name, d)
				return fmt.Errorf("%s", diff)
			}
		}
		return nil
	})
	var v []string
	if len(audits) != len(c.nodes) {
		return append(v, "the audit could not be read from every node")
	}
	if diff != "" {
		v = append(v, "audit not identical: "+diff)
	}
	a := audits[0]
	for i := 1; i < len(a); i++ {
		if a[i].GetSeq() != a[i-1].GetSeq()+1 {
			v = append(v, fmt.Sprintf("audit gap or duplicate: seq %d after %d", a[i].GetSeq(), a[i-1].GetSeq()))
		}
		if !bytes.Equal(a[i].GetPrevHash(), a[i-1].GetHash()) {
			v = append(v, fmt.Sprintf("audit chain broken at seq %d", a[i].GetSeq()))
		}
	}
	acquired := map[string]int{}
	for _, e := range a {
		if e.GetService() == lockService && e.GetAction() == "acquired the deploy lock" {
			acquired[e.GetDetail()]++
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.ops {
		if o.In.Op != "acquire" {
			continue
		}
		n := acquired[o.In.Msg]
		switch {
		case o.Out.Kind == "ok" && n != 1, (o.Out.Kind == "held" || o.Out.Kind == "aborted") && n != 0, n > 1:
			v = append(v, fmt.Sprintf("acquire %s answered %s but is audited %d times", o.In.Msg, o.Out.Kind, n))
		}
	}
	return v
}

// auditDiff describes the first difference between two audits.
func auditDiff(a, b []*deployv1.AuditEntry) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d entries vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].GetSeq() != b[i].GetSeq() || !bytes.Equal(a[i].GetHash(), b[i].GetHash()) {
			return fmt.Sprintf("entry %d: seq %d vs %d", i, a[i].GetSeq(), b[i].GetSeq())
		}
	}
	return ""
}
