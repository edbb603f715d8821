package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
)

// The lock the workload fights over.
const (
	lockService = "chaos"
	lockDest    = ""
)

// lockInput is one operation on the deploy lock. Each acquire carries a
// unique message, so a status names which acquire holds the lock.
type lockInput struct {
	Op   string `json:"op"` // acquire, release, status
	Msg  string `json:"msg,omitempty"`
	Node string `json:"node"` // the controller asked
}

// lockOutput is its result. Kind: ok; held (acquire refused: the lock is
// taken); none (release refused: no lock); aborted (refused: the lock
// changed meanwhile, nothing written); unknown (an error that leaves open whether the
// write happened: a timeout, an unavailable leader). Holder is the
// message of the lock a status returned ("" when free).
type lockOutput struct {
	Kind   string `json:"kind"`
	Holder string `json:"holder,omitempty"`
	Err    string `json:"err,omitempty"`
}

// op is one recorded operation; Return is 0 while it is pending.
type op struct {
	Client int        `json:"client"`
	In     lockInput  `json:"in"`
	Out    lockOutput `json:"out"`
	Call   int64      `json:"call"`
	Return int64      `json:"return"`
}

// history collects operations from concurrent clients.
type history struct {
	mu  sync.Mutex
	t0  time.Time
	ops []op
}

func (h *history) now() int64 { return int64(time.Since(h.t0)) }

func (h *history) add(o op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

// lockClient is one operator connection to every controller.
type lockClient struct {
	id    int
	conns []*grpc.ClientConn
	names []string
	rng   *rand.Rand
}

func dialAll(creds *pki.Credentials, addrs, names []string, id int, seed uint64) (*lockClient, error) {
	lc := &lockClient{id: id, names: names, rng: rand.New(rand.NewPCG(seed, uint64(id)))}
	for _, a := range addrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(credentials.NewTLS(creds.ClientTLS(pki.RoleController))))
		if err != nil {
			return nil, err
		}
		lc.conns = append(lc.conns, conn)
	}
	return lc, nil
}

func (lc *lockClient) close() {
	for _, c := range lc.conns {
		c.Close()
	}
}

// runWorkload runs clients operations on the lock against random
// controllers until ctx ends, each operation bounded by opTimeout.
func runWorkload(ctx context.Context, credsPath string, addrs, names []string, clients int, seed uint64, h *history) error {
	f, err := ctlclient.LoadFile(credsPath)
	if err != nil {
		return err
	}
	creds, err := f.Credentials()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := range clients {
		lc, err := dialAll(creds, addrs, names, i, seed)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer lc.close()
			for n := 0; ctx.Err() == nil; n++ {
				lc.one(fmt.Sprintf("c%d-%d", lc.id, n), h)
			}
		})
	}
	wg.Wait()
	return nil
}

const opTimeout = 2 * time.Second

func (lc *lockClient) one(tag string, h *history) {
	i := lc.rng.IntN(len(lc.conns))
	in := lockInput{Node: lc.names[i]}
	switch r := lc.rng.IntN(10); {
	case r < 4:
		in.Op, in.Msg = "acquire", tag
	case r < 7:
		in.Op = "release"
	default:
		in.Op = "status"
	}
	c := deployv1.NewDeployServiceClient(lc.conns[i])
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	o := op{Client: lc.id, In: in, Call: h.now()}
	var err error
	switch in.Op {
	case "acquire":
		_, err = c.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: lockService, Destination: lockDest, Message: in.Msg})
		o.Out = classify(err, codes.FailedPrecondition, "held")
		if status.Code(err) == codes.Aborted { // the lock changed while taking it: not taken
			o.Out = lockOutput{Kind: "aborted", Err: err.Error()}
		}
	case "release":
		_, err = c.ReleaseLock(ctx, &deployv1.ReleaseLockRequest{Service: lockService, Destination: lockDest})
		o.Out = classify(err, codes.NotFound, "none")
		if status.Code(err) == codes.Aborted {
			o.Out = lockOutput{Kind: "aborted", Err: err.Error()}
		}
	case "status":
		var resp *deployv1.LockStatusResponse
		resp, err = c.LockStatus(ctx, &deployv1.LockStatusRequest{Service: lockService, Destination: lockDest})
		o.Out = classify(err, codes.OK, "")
		if err == nil {
			o.Out.Holder = resp.GetLock().GetMessage()
		}
	}
	o.Return = h.now()
	h.add(o)
	if o.Out.Kind == "unknown" {
		// Don't hammer an unreachable node: the next operation comes after
		// a short back-off (not a wait for a condition: pacing).
		time.Sleep(100 * time.Millisecond)
	}
}

// classify maps an error to a definite outcome (ok, or refused with the
// code that means refused) or unknown.
func classify(err error, refused codes.Code, kind string) lockOutput {
	if err == nil {
		return lockOutput{Kind: "ok"}
	}
	if refused != codes.OK && status.Code(err) == refused {
		return lockOutput{Kind: kind, Err: err.Error()}
	}
	return lockOutput{Kind: "unknown", Err: err.Error()}
}

// lockModel is the deploy lock's specification: the state is the message
// of the acquire that holds it ("" when free). An acquire succeeds only
// when the lock is free and is refused only when it is held; a release
// (by any operator) succeeds only when it is held and reports none only
// when it is free; an aborted release changed nothing; a status returns
// the holder. An operation with an unknown outcome may or may not have
// taken effect.
var lockModel = porcupine.NondeterministicModel{
	Init: func() []interface{} { return []interface{}{""} },
	Step: func(state, input, output interface{}) []interface{} {
		s, in, out := state.(string), input.(lockInput), output.(lockOutput)
		switch in.Op {
		case "acquire":
			switch out.Kind {
			case "ok":
				if s == "" {
					return []interface{}{in.Msg}
				}
			case "held":
				if s != "" {
					return []interface{}{s}
				}
			case "aborted":
				return []interface{}{s}
			case "unknown":
				if s == "" {
					return []interface{}{s, in.Msg}
				}
				return []interface{}{s}
			}
		case "release":
			switch out.Kind {
			case "ok":
				if s != "" {
					return []interface{}{""}
				}
			case "none":
				if s == "" {
					return []interface{}{s}
				}
			case "aborted":
				return []interface{}{s}
			case "unknown":
				return []interface{}{s, ""}
			}
		case "status":
			if out.Kind == "ok" && out.Holder == s {
				return []interface{}{s}
			}
		}
		return nil
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(lockInput), output.(lockOutput)
		s := fmt.Sprintf("%s@%s", in.Op, in.Node)
		if in.Msg != "" {
			s += "(" + in.Msg + ")"
		}
		s += " -> " + out.Kind
		if in.Op == "status" {
			s += fmt.Sprintf(" %q", out.Holder)
		}
		return s
	},
	DescribeState: func(state interface{}) string { return fmt.Sprintf("holder=%q", state.(string)) },
	Hash: func(state interface{}) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
}

// staleReads finds the plainest violations without a search, to explain
// what porcupine found (or decide when it runs out of time): a status that
// returned holder m although another acquire succeeded after m's acquire
// returned and before the status was called. Acquire messages are unique,
// so the lock cannot be m's again once that other acquire took it.
func (h *history) staleReads() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	acquired := map[string]op{}
	var oks []op
	for _, o := range h.ops {
		if o.In.Op == "acquire" && o.Out.Kind == "ok" {
			acquired[o.In.Msg] = o
			oks = append(oks, o)
		}
	}
	var out []string
	for _, o := range h.ops {
		if o.In.Op != "status" || o.Out.Kind != "ok" || o.Out.Holder == "" {
			continue
		}
		a, ok := acquired[o.Out.Holder]
		if !ok {
			continue
		}
		for _, x := range oks {
			if x.Call > a.Return && x.Return < o.Call {
				out = append(out, fmt.Sprintf("stale read: status on %s called at %.3fs returned holder %s, but acquire %s succeeded on %s at %.3fs, after %s's returned at %.3fs",
					o.In.Node, secs(o.Call), o.Out.Holder, x.In.Msg, x.In.Node, secs(x.Return), o.Out.Holder, secs(a.Return)))
				break
			}
		}
	}
	return out
}

func secs(ns int64) float64 { return float64(ns) / 1e9 }

// operations turns the history into porcupine's: an operation with an
// unknown outcome may take effect at any time after its call, so it
// returns at the end of time; a status with an unknown outcome tells
// nothing and is left out.
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var end int64
	for _, o := range h.ops {
		end = max(end, o.Return)
	}
	var ops []porcupine.Operation
	for _, o := range h.ops {
		ret := o.Return
		if o.Out.Kind == "unknown" {
			if o.In.Op == "status" {
				continue
			}
			ret = end + 1
		}
		ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: o.In, Call: o.Call, Output: o.Out, Return: ret})
	}
	return ops
}

// save writes the history as JSON lines.
func (h *history) save(path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, o := range h.ops {
		if err := enc.Encode(o); err != nil {
			return err
		}
	}
	return nil
}

// counts summarizes the history by operation and outcome.
func (h *history) counts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := map[string]int{}
	for _, o := range h.ops {
		m[o.In.Op+"/"+o.Out.Kind]++
	}
	return m
}
