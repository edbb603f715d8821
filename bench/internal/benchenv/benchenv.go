// Package benchenv starts what the in-process benchmarks (bench/fleet,
// bench/spine) share, without a testing.T: a cluster of real controllers
// over real mutual TLS in this process, join tokens, and simulated agents
// (the real agent session code) spread over the controllers.
package benchenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// clientTimeout bounds connecting to one controller.
const clientTimeout = 30 * time.Second

// Config is a Cluster's setup.
type Config struct {
	// Dir holds the controllers' data directories (Dir/c1, …).
	Dir string
	// N is the number of controllers: c1 inits, the others join.
	N int
	// Logger gets the controllers' logs (with a "node" attribute); nil
	// discards them.
	Logger *slog.Logger
	// Raft adjusts every node's Raft config.
	Raft func(*raftstore.Config)
}

// Cluster is N controllers running in this process.
type Cluster struct {
	// Nodes are the controllers, in order (c1 first).
	Nodes []*controller.Controller
	// Admin is an admin client over every node.
	Admin *ctlclient.Client
}

// StartCluster starts cfg.N controllers and returns once all serve. On an
// error it stops those it started.
func StartCluster(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c1, err := startNode(ctx, cfg, "c1", true, nil, "")
	if err != nil {
		return nil, err
	}
	c.Nodes = append(c.Nodes, c1)
	admin, err := ctlclient.LoadFile(filepath.Join(cfg.Dir, "c1", "admin.kctl.yaml"))
	if err != nil {
		return nil, err
	}
	creds, err := admin.Credentials()
	if err != nil {
		return nil, err
	}
	c.Admin = ctlclient.NewClient(creds, c.Addrs(), clientTimeout)
	if cfg.N > 1 {
		tok, err := c.Token(ctx, controllerv1.Role_ROLE_CONTROLLER, uint32(cfg.N-1))
		if err != nil {
			return nil, err
		}
		for i := 2; i <= cfg.N; i++ {
			n, err := startNode(ctx, cfg, fmt.Sprintf("c%d", i), false, []string{c1.APIAddress()}, tok)
			if err != nil {
				return nil, err
			}
			c.Nodes = append(c.Nodes, n)
		}
	}
	c.Admin = ctlclient.NewClient(creds, c.Addrs(), clientTimeout)
	return c, nil
}

func startNode(ctx context.Context, cfg Config, name string, init bool, join []string, token string) (*controller.Controller, error) {
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		api.Close()
		return nil, err
	}
	return controller.Start(ctx, controller.Config{
		Name: name, DataDir: filepath.Join(cfg.Dir, name), APIListener: api, RaftListener: rl,
		Init: init, JoinAddrs: join, Token: token, Logger: cfg.Logger.With("node", name), Raft: cfg.Raft,
	})
}

// Addrs lists the nodes' API addresses.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.APIAddress())
	}
	return addrs
}

// Token makes a join token for role with uses joins, valid for an hour.
func (c *Cluster) Token(ctx context.Context, role controllerv1.Role, uses uint32) (string, error) {
	var tok string
	err := c.Admin.Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		resp, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: role, Uses: uses, TtlSeconds: 3600})
		tok = resp.GetToken()
		return err
	})
	return tok, err
}

// Close stops every node (a node already closed stays closed).
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Close()
	}
}

// Agents are simulated agents running in this process.
type Agents struct {
	// Names are the agents' names, in order.
	Names  []string
	agents []*agent.Agent
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// joinParallel bounds the joins in flight: they contend for the token's
// use count.
const joinParallel = 16

// StartAgents joins n agents with token, agent i with config(i) (which sets
// at least Name, DataDir and Runtime) connecting to addrs rotated by i (as
// a load balancer would spread them), runs them and waits until every one
// has a session. Stop ends them.
func StartAgents(ctx context.Context, addrs []string, token string, n int, config func(i int) agent.Config) (*Agents, error) {
	actx, cancel := context.WithCancel(ctx)
	a := &Agents{Names: make([]string, n), agents: make([]*agent.Agent, n), cancel: cancel}
	errs := make([]error, n)
	sem := make(chan struct{}, joinParallel)
	var joins sync.WaitGroup
	for i := range n {
		joins.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cfg := config(i)
			cfg.Controllers = append(slices.Clone(addrs[i%len(addrs):]), addrs[:i%len(addrs)]...)
			cfg.Token = token
			a.Names[i] = cfg.Name
			// A join refused on a concurrent update of the token is retried.
			for attempt := 0; attempt < 10; attempt++ {
				a.agents[i], errs[i] = agent.New(actx, cfg)
				if errs[i] == nil || !strings.Contains(errs[i].Error(), "concurrent update") {
					break
				}
			}
		})
	}
	joins.Wait()
	if err := errors.Join(errs...); err != nil {
		a.Stop()
		return nil, err
	}
	for _, ag := range a.agents {
		a.wg.Go(func() { _ = ag.Run(actx) })
	}
	err := testenv.PollEvery(5*time.Minute, 10*time.Millisecond, func() error {
		for _, ag := range a.agents {
			if ag.Sessions() == 0 {
				return errors.New("an agent has no session")
			}
		}
		return nil
	})
	if err != nil {
		a.Stop()
		return nil, fmt.Errorf("agents did not connect: %w", err)
	}
	return a, nil
}

// Stop ends the agents and waits for them.
func (a *Agents) Stop() {
	a.cancel()
	a.wg.Wait()
}
