// Package docker is the agent's runtime on a real Docker engine: it carries
// out the controller's operations (proto/kctl/agent/v1/ops.proto) through the
// Engine API exactly as Kamal does over SSH with the docker CLI: the same
// container names, labels, env, network, kamal-proxy commands, stop rules and
// prune algorithm, so a server can move between Kamal and kctl.
//
// Every operation is idempotent and safe to repeat after a crash or a
// cancelled context: BootApp recognises the container it created itself (by
// a keyed hash of its configuration, label kctl.spec) and resumes from it
// instead of creating a second one.
package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/agent/exec"
	"github.com/kctl-dev/kctl/internal/agent/proxy"
	"github.com/kctl-dev/kctl/internal/atomicfile"
)

// Labels the agent adds beside Kamal's.
const (
	// LabelSpec holds a keyed hash of the container's configuration, so a
	// re-run recognises the container it created.
	LabelSpec = "kctl.spec"
	// LabelAgent names the agent that owns the container (only when
	// Config.AgentName is set: several agents sharing one engine in tests).
	LabelAgent = "kctl.agent"
	// ProxyImageTitle is the label Kamal prunes proxy containers and images by.
	ProxyImageTitle = "org.opencontainers.image.title=kamal-proxy"
)

// Sentinel errors.
var (
	ErrImageMissing  = errors.New("docker: image not present")
	ErrServiceLabel  = errors.New("docker: image is missing the service label")
	ErrProxyTooOld   = errors.New("docker: kamal-proxy is too old")
	ErrNotReady      = errors.New("docker: container not ready")
	ErrNoContainer   = errors.New("docker: no such container")
	ErrBadOperation  = errors.New("docker: invalid operation")
	ErrRegistryLogin = errors.New("docker: registry refused the credentials")
)

// MinimumProxyVersion is Kamal's MINIMUM_VERSION for kamal-proxy.
const MinimumProxyVersion = "v0.9.2"

// Config configures a Runtime. The zero value (plus DataDir) behaves exactly
// as Kamal: container `kamal-proxy`, volume `kamal-proxy-config`.
type Config struct {
	// DataDir plays the role of the SSH user's home: env files go to
	// DataDir/.kamal/apps/…, `$PWD` in volume sources means DataDir. On a
	// host migrated from Kamal it is that user's home (agent --kamal-home).
	DataDir string
	// StateDir holds the runtime's own files (the spec-hash key), never
	// Kamal's tree; default DataDir.
	StateDir string
	// Client is the Engine API client; nil means client.FromEnv with API
	// version negotiation.
	Client *client.Client
	// AgentName, when set, labels every container the agent creates with
	// kctl.agent=<name> and restricts lookups to them, so several agents
	// can share one engine (tests). Empty in production.
	AgentName string
	// NamePrefix, when set, is prepended to the engine name of every app,
	// accessory, assets and run-once container (not the proxy's), and
	// stripped from every name and version reported back, so several agents
	// sharing one engine can run the same spec (tests: "<agent>."). Empty in
	// production: Kamal's names exactly.
	NamePrefix string
	// ProxyName overrides the proxy container name (default kamal-proxy).
	ProxyName string
	// ProxyVolume overrides the proxy state volume (default kamal-proxy-config).
	ProxyVolume string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
	// PollInterval is the base interval of readiness polling (default 1s,
	// growing 1, 2, 3… as Kamal's).
	PollInterval time.Duration
}

// Runtime implements exec.Runtime on a Docker engine.
type Runtime struct {
	cfg    Config
	cli    *client.Client
	proxy  *proxy.Driver
	secret []byte // key of the kctl.spec hash
}

var _ exec.Runtime = (*Runtime)(nil)

// New returns a Runtime. It creates DataDir and the spec-hash key.
func New(cfg Config) (*Runtime, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("docker: Config.DataDir is required")
	}
	if cfg.ProxyName == "" {
		cfg.ProxyName = proxy.DefaultContainer
	}
	if cfg.ProxyVolume == "" {
		cfg.ProxyVolume = "kamal-proxy-config"
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("docker: data dir: %w", err)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = cfg.DataDir
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("docker: state dir: %w", err)
	}
	key, err := loadKey(filepath.Join(cfg.StateDir, "spec.key"))
	if err != nil {
		return nil, err
	}
	cli := cfg.Client
	if cli == nil {
		cli, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker: client: %w", err)
		}
	}
	r := &Runtime{cfg: cfg, cli: cli, secret: key}
	r.proxy = &proxy.Driver{Exec: proxy.ExecerFunc(r.ExecWait), Container: cfg.ProxyName}
	return r, nil
}

// Client returns the Engine API client.
func (r *Runtime) Client() *client.Client { return r.cli }

// Proxy returns the kamal-proxy driver for this runtime's proxy container.
func (r *Runtime) Proxy() *proxy.Driver { return r.proxy }

func loadKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := writeDataFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("docker: spec key: %w", err)
	}
	return b, nil
}

// writeDataFile creates path's directory (0700) and writes data to path
// atomically.
func writeDataFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, mode)
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// failed is an operation's failure as a result (the agent reports it to the
// controller), unless ctx ended: then the operation did not finish at all.
func failed(ctx context.Context, err error) (*agentv1.Result, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return &agentv1.Result{Ok: false, Error: oneLine(err.Error())}, nil
}

// Do carries out one operation.
func (r *Runtime) Do(ctx context.Context, op *agentv1.Operation) (*agentv1.Result, error) {
	if _, err := r.cli.Ping(ctx); err != nil {
		return nil, fmt.Errorf("docker: engine unreachable: %w", err)
	}
	var err error
	res := &agentv1.Result{Ok: true}
	switch o := op.GetOp().(type) {
	case *agentv1.Operation_Noop:
	case *agentv1.Operation_GatherFacts:
		res.Facts, err = r.GatherFacts(ctx)
		if err == nil {
			res.Facts.Images, err = r.listImages(ctx, o.GatherFacts.GetImageRepositories())
		}
	case *agentv1.Operation_EnsureNetwork:
		err = r.EnsureNetwork(ctx, o.EnsureNetwork.GetName())
	case *agentv1.Operation_PullImage:
		err = r.PullImage(ctx, o.PullImage)
	case *agentv1.Operation_BootApp:
		return r.BootApp(ctx, o.BootApp)
	case *agentv1.Operation_StopStale:
		err = r.StopStale(ctx, o.StopStale)
	case *agentv1.Operation_TagLatest:
		err = r.TagLatest(ctx, o.TagLatest)
	case *agentv1.Operation_Prune:
		err = r.Prune(ctx, o.Prune)
	case *agentv1.Operation_BootProxy:
		err = r.BootProxy(ctx, o.BootProxy)
	case *agentv1.Operation_ProxyControl:
		res.Detail, err = r.ProxyControl(ctx, o.ProxyControl)
	case *agentv1.Operation_BootAccessory:
		return r.BootAccessory(ctx, o.BootAccessory)
	case *agentv1.Operation_AccessoryControl:
		err = r.AccessoryControl(ctx, o.AccessoryControl)
	case *agentv1.Operation_AppControl:
		err = r.AppControl(ctx, o.AppControl)
	case *agentv1.Operation_ListVersions:
		res.Versions, err = r.ListVersions(ctx, o.ListVersions)
	default:
		err = fmt.Errorf("%w: unknown operation %T", ErrBadOperation, op.GetOp())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return &agentv1.Result{Ok: false, Error: oneLine(err.Error())}, nil
	}
	return res, nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.ReplaceAll(s, "\n", " ")
}

// agentFilter adds the agent label filter when AgentName is set.
func (r *Runtime) agentFilter(f filters.Args) filters.Args {
	if r.cfg.AgentName != "" {
		f.Add("label", LabelAgent+"="+r.cfg.AgentName)
	}
	return f
}

// findSpec returns the container of this spec name (engineName), or nil.
func (r *Runtime) findSpec(ctx context.Context, spec string) (*container.Summary, error) {
	return r.findByName(ctx, r.engineName(spec))
}

// findByName returns the container with exactly this engine name, or nil.
func (r *Runtime) findByName(ctx context.Context, name string) (*container.Summary, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", engineNameFilter(name)))})
	if err != nil {
		return nil, err
	}
	for i := range list {
		for _, n := range list[i].Names {
			if strings.TrimPrefix(n, "/") == name {
				return &list[i], nil
			}
		}
	}
	return nil, nil
}

// stopContainer stops id with Kamal's `docker stop [-t N]`.
func (r *Runtime) stopContainer(ctx context.Context, id string, timeout *int) error {
	err := r.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: timeout})
	if client.IsErrNotFound(err) {
		return nil
	}
	return err
}

// lastLogs returns the container's last n log lines (stdout and stderr).
func (r *Runtime) lastLogs(ctx context.Context, id string, n int) string {
	rc, err := r.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(n)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var b strings.Builder
	_, _ = stdcopy.StdCopy(&b, &b, io.LimitReader(rc, 64<<10))
	return b.String()
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
