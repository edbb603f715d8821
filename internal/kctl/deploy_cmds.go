package kctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/builder"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/hooks"
	"github.com/kctl-dev/kctl/internal/locks"
)

func init() {
	registerCommand(newDeployCmd, newRedeployCmd, newRollbackCmd, newSetupCmd, newDeploysCmd,
		newLockCmd, newAuditCmd, newBuildCmd, newPruneCmd, newRegistryCmd)
}

// deployClient runs fn against whichever controller answers.
func deployClient(cmd *cobra.Command, fn func(ctx context.Context, c deployv1.DeployServiceClient) error) error {
	g, err := globalsOf(cmd)
	if err != nil {
		return err
	}
	return g.conn(cmd.Context(), func(ctx context.Context, cc grpc.ClientConnInterface) error {
		return fn(ctx, deployv1.NewDeployServiceClient(cc))
	})
}

// deployFlags are the flags of deploy, redeploy, rollback and setup.
type deployFlags struct {
	project          targetFlags
	skipPush         bool
	noCache          bool
	detach           bool
	lockWait         bool
	lockWaitTimeout  time.Duration
	lockWaitInterval time.Duration
}

func addDeployFlags(cmd *cobra.Command, f *deployFlags, push bool) {
	addTargetFlags(cmd, &f.project)
	if push {
		cmd.Flags().BoolVarP(&f.skipPush, "skip-push", "P", false, "skip the image build and push; deploy an image already in the registry")
		cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "build without the Docker cache")
	}
	cmd.Flags().BoolVar(&f.detach, "detach", false, "submit and print the deploy's id without waiting (re-attach with: kctl deploys watch ID)")
	cmd.Flags().BoolVar(&f.lockWait, "lock-wait", false, "wait for the deploy lock instead of failing")
	cmd.Flags().DurationVar(&f.lockWaitTimeout, "lock-wait-timeout", 900*time.Second, "how long --lock-wait waits")
	cmd.Flags().DurationVar(&f.lockWaitInterval, "lock-wait-interval", 15*time.Second, "how often --lock-wait retries")
}

// newDeployLikeCmd makes deploy, redeploy and setup: Kamal's deploy flow
// with the differences o names.
func newDeployLikeCmd(use, short string, o requestOptions) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDeploy(cmd, &f, o) },
	}
	addDeployFlags(cmd, &f, true)
	return cmd
}

func newDeployCmd() *cobra.Command {
	return newDeployLikeCmd("deploy", "Build, push and deploy the app to every server through the controller",
		requestOptions{Command: "deploy"})
}

func newRedeployCmd() *cobra.Command {
	return newDeployLikeCmd("redeploy", "Deploy without booting the proxy or pruning",
		requestOptions{Command: "redeploy", SkipProxyBoot: true, SkipPrune: true})
}

func newSetupCmd() *cobra.Command {
	return newDeployLikeCmd("setup", "Boot the proxy and accessories, then deploy",
		requestOptions{Command: "setup", WithAccessories: true})
}

func newRollbackCmd() *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "rollback [VERSION]",
		Short: "Boot a retained version again; without VERSION, list the versions present on every host",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return listVersions(cmd, &f)
			}
			f.project.version = args[0]
			f.skipPush = true
			versions, err := presentVersions(cmd, &f)
			if err != nil {
				return err
			}
			if !contains(versions, args[0]) {
				return fmt.Errorf("The app version '%s' is not available as a container (use 'kctl rollback' for available versions)", args[0])
			}
			return runDeploy(cmd, &f, requestOptions{Command: "rollback", SkipPull: true, SkipProxyBoot: true, SkipPrune: true})
		},
	}
	addDeployFlags(cmd, &f, false)
	return cmd
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// presentVersions asks the controller which versions exist as containers
// on every selected host of every role.
func presentVersions(cmd *cobra.Command, f *deployFlags) ([]string, error) {
	p, err := loadProject(cmd.Context(), cmd, f.project, false)
	if err != nil {
		return nil, describeErr(err)
	}
	sel, err := selectedHosts(p.cfg, p.selection())
	if err != nil {
		return nil, err
	}
	in := &deployv1.VersionsRequest{Service: p.cfg.Service, Destination: p.cfg.Destination, Roles: map[string]*deployv1.HostList{}}
	for role, hs := range sel {
		in.Roles[role] = &deployv1.HostList{Hosts: hs}
	}
	var out []string
	err = deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
		resp, err := c.Versions(ctx, in)
		out = resp.GetVersions()
		return err
	})
	return out, err
}

func listVersions(cmd *cobra.Command, f *deployFlags) error {
	versions, err := presentVersions(cmd, f)
	if err != nil {
		return err
	}
	if len(versions) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "No version is present on every host.")
		return nil
	}
	fmt.Fprintln(cmd.OutOrStdout(), "Versions present on every host, newest first (kctl rollback VERSION):")
	for _, v := range versions {
		fmt.Fprintln(cmd.OutOrStdout(), "  "+v)
	}
	return nil
}

// runDeploy is Kamal's deploy flow with the locked part run by the
// controller: hooks and the build run here, the rest on the controllers.
func runDeploy(cmd *cobra.Command, f *deployFlags, o requestOptions) error {
	ctx := cmd.Context()
	start := time.Now()
	p, err := loadProject(ctx, cmd, f.project, true)
	if err != nil {
		return describeErr(err)
	}
	out := cmd.OutOrStdout()
	o.Selection = p.selection()
	hosts := p.allHosts()
	if err := p.runHook(ctx, hooks.PreConnect, o.Command, hosts, nil); err != nil {
		return err
	}
	if !f.skipPush {
		if err := buildAndPush(ctx, cmd, p, o.Command, f.noCache); err != nil {
			return err
		}
	}
	req, err := buildRequest(p.cfg, p.dir, o)
	if err != nil {
		return describeErr(err)
	}
	if err := p.runHook(ctx, hooks.PreDeploy, o.Command, hosts, nil); err != nil {
		return err
	}
	rec, err := submit(cmd, f, req)
	if err != nil {
		return err
	}
	if f.detach {
		fmt.Fprintln(out, rec.GetId())
		return nil
	}
	final, err := watch(cmd, rec.GetId(), p, o.Command)
	if err != nil {
		return err
	}
	if final.GetState() != deployv1.State_STATE_SUCCEEDED {
		return fmt.Errorf("deploy %s %s: %s", final.GetId(), strings.ToLower(strings.TrimPrefix(final.GetState().String(), "STATE_")), firstLine(final.GetError()))
	}
	runtime := strconv.Itoa(int(time.Since(start).Seconds()))
	return p.runHook(ctx, hooks.PostDeploy, o.Command, hosts, map[string]string{"KAMAL_RUNTIME": runtime})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// submit records the deploy, waiting for the lock with --lock-wait as Kamal
// does (only behind automatic locks).
func submit(cmd *cobra.Command, f *deployFlags, req *deployv1.Request) (*deployv1.Record, error) {
	deadline := time.Now().Add(f.lockWaitTimeout)
	for {
		var rec *deployv1.Record
		err := deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
			resp, err := c.Submit(ctx, &deployv1.SubmitRequest{Request: req})
			rec = resp.GetDeploy()
			return err
		})
		if err == nil {
			return rec, nil
		}
		if !f.lockWait || !strings.Contains(err.Error(), "deploy lock already in place") {
			return nil, err
		}
		if !strings.Contains(err.Error(), locks.AutomaticMessage) {
			return nil, fmt.Errorf("%w; deploy lock held manually, not waiting", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("timed out waiting for deploy lock: %w", err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Waiting for the deploy lock: %s\n", err)
		select {
		case <-cmd.Context().Done():
			return nil, cmd.Context().Err()
		case <-time.After(f.lockWaitInterval):
		}
	}
}

// watch follows a deploy to its end, re-attaching through another
// controller when the one it watches goes away. With a project it runs the
// pre-app-boot and post-app-boot hooks as boot groups start and end.
func watch(cmd *cobra.Command, id string, p *project, command string) (*deployv1.Record, error) {
	prog := &deploy.Progress{W: cmd.OutOrStdout()}
	var last *deployv1.WatchResponse
	groupsStarted, groupsDone := map[int]bool{}, map[int]bool{}
	g, err := globalsOf(cmd)
	if err != nil {
		return nil, err
	}
	lostSince := time.Time{}
	for attempt := 0; ; attempt++ {
		err := deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
			stream, err := c.Watch(ctx, &deployv1.WatchRequest{Id: id})
			if err != nil {
				return err
			}
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				last = resp
				prog.Update(resp.GetDeploy(), resp.GetSteps())
				if p != nil {
					if err := groupHooks(ctx, p, command, resp, groupsStarted, groupsDone); err != nil {
						c.Cancel(ctx, &deployv1.CancelRequest{Id: id})
						return err
					}
				}
			}
		})
		if last != nil && deploy.Ended(last.GetDeploy().GetState()) {
			prog.Summary(last.GetDeploy(), last.GetSteps())
			return last.GetDeploy(), nil
		}
		if cmd.Context().Err() != nil {
			return nil, cmd.Context().Err()
		}
		// A stream that ended early or a controller that went away: the
		// deploy goes on without us; re-attach through any controller for
		// as long as --timeout allows, then say how to come back.
		lost := err == nil || errors.Is(err, ctlclient.ErrUnreachable) ||
			status.Code(err) == codes.Unavailable || status.Code(err) == codes.Canceled
		if !lost {
			return nil, err
		}
		if err == nil {
			lostSince = time.Time{}
		} else if lostSince.IsZero() {
			lostSince = time.Now()
		} else if time.Since(lostSince) > g.deadline {
			return nil, fmt.Errorf("lost every controller for %s (%v); the deploy goes on without kctl: re-attach with `kctl deploys watch %s`", g.deadline, err, id)
		}
		if attempt > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "Lost the controller; re-attaching to deploy %s\n", id)
		}
		select {
		case <-cmd.Context().Done():
			return nil, cmd.Context().Err()
		case <-time.After(time.Duration(min(attempt+1, 5)) * 200 * time.Millisecond):
		}
	}
}

// groupHooks runs pre-app-boot when a boot group's first step starts and
// post-app-boot when all its steps succeeded, with KAMAL_HOSTS = the group.
func groupHooks(ctx context.Context, p *project, command string, resp *deployv1.WatchResponse, started, done map[int]bool) error {
	states := map[string]deployv1.State{}
	for _, s := range resp.GetSteps() {
		states[s.GetStepId()] = s.GetState()
	}
	for i, ph := range resp.GetDeploy().GetPlan().GetPhases() {
		if len(ph.GetGroupHosts()) == 0 {
			continue
		}
		any, all := false, true
		for _, s := range ph.GetSteps() {
			st, ok := states[s.GetId()]
			any = any || ok
			all = all && st == deployv1.State_STATE_SUCCEEDED
		}
		group := map[string]string{"KAMAL_HOSTS": strings.Join(ph.GetGroupHosts(), ",")}
		if any && !started[i] {
			started[i] = true
			if err := p.runHook(ctx, hooks.PreAppBoot, command, ph.GetGroupHosts(), group); err != nil {
				return err
			}
		}
		if all && !done[i] {
			done[i] = true
			if err := p.runHook(ctx, hooks.PostAppBoot, command, ph.GetGroupHosts(), group); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildAndPush is `kamal build push`: pre-build hook, build from git HEAD
// (or builder.context), push both tags.
func buildAndPush(ctx context.Context, cmd *cobra.Command, p *project, command string, noCache bool) error {
	if err := p.runHook(ctx, hooks.PreBuild, command, p.allHosts(), nil); err != nil {
		return err
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("build: no Docker engine: %w", err)
	}
	defer cli.Close()
	opts := builder.Options{
		Dir: p.dir, Service: p.cfg.Service, Repository: p.cfg.Repository(),
		Tags: []string{p.cfg.Version, p.cfg.LatestTag()}, NoCache: noCache, Progress: cmd.ErrOrStderr(),
	}
	b := p.cfg.Builder
	opts.Context, opts.Dockerfile, opts.Target, opts.Secrets = b.Context, b.Dockerfile, b.Target, b.Secrets
	if len(b.Args) > 0 {
		opts.Args = map[string]string{}
		for _, kv := range b.Args {
			opts.Args[kv[0]] = kv[1]
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Building %s:%s\n", p.cfg.Repository(), p.cfg.Version)
	refs, err := builder.Build(ctx, cli, opts)
	if err != nil {
		return err
	}
	auth, err := p.cfg.RegistryAuth()
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Pushing %s\n", strings.Join(refs, ", "))
	return builder.Push(ctx, cli, refs, builder.Auth{Server: auth.GetServer(), Username: auth.GetUsername(), Password: auth.GetPassword()}, io.Discard)
}

func newBuildCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "build", Short: "Build, push and pull the app image"}
	sub := func(use, short string, push, pull bool) *cobra.Command {
		var pf targetFlags
		var noCache bool
		c := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				p, err := loadProject(cmd.Context(), cmd, pf, true)
				if err != nil {
					return describeErr(err)
				}
				if push {
					if err := buildAndPush(cmd.Context(), cmd, p, "build", noCache); err != nil {
						return err
					}
				}
				if pull {
					return pullOnHosts(cmd, p)
				}
				return nil
			},
		}
		addTargetFlags(c, &pf)
		if push {
			c.Flags().BoolVar(&noCache, "no-cache", false, "build without the Docker cache")
		}
		return c
	}
	cmd.AddCommand(
		sub("push", "Build the image from git HEAD (or builder.context) and push it to the registry", true, false),
		sub("pull", "Pull the image on every selected host through its agent", false, true),
		sub("deliver", "push, then pull", true, true),
	)
	return cmd
}

// pullOnHosts has every selected app host pull the image, as `kamal build
// pull` does, through the controllers.
func pullOnHosts(cmd *cobra.Command, p *project) error {
	auth, err := p.cfg.RegistryAuth()
	if err != nil {
		return err
	}
	op := &agentv1.Operation{Op: &agentv1.Operation_PullImage{PullImage: &agentv1.PullImage{
		Image: p.cfg.Image(), Auth: auth, Service: p.cfg.Service}}}
	return onHosts(cmd, p.allHosts(), "pulled "+p.cfg.Image(), func(string) *agentv1.Operation { return op })
}

// onHosts sends one operation per host and reports each outcome.
func onHosts(cmd *cobra.Command, hosts []string, done string, op func(host string) *agentv1.Operation) error {
	g, err := globalsOf(cmd)
	if err != nil {
		return err
	}
	var failed []string
	for _, h := range hosts {
		res, err := g.sendCommand(cmd.Context(), h, op(h))
		switch {
		case err != nil:
			failed = append(failed, h+": "+err.Error())
		case !res.GetOk():
			failed = append(failed, h+": "+res.GetError())
		default:
			fmt.Fprintf(cmd.OutOrStdout(), "  %-20s %s\n", h, done)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed on %d of %d hosts:\n  %s", len(failed), len(hosts), strings.Join(failed, "\n  "))
	}
	return nil
}

func newRegistryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Check the registry login"}
	var pf targetFlags
	login := &cobra.Command{
		Use: "login", Short: "Log in to the registry with deploy.yml's credentials (agents get them with every pull)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProject(cmd.Context(), cmd, pf, false)
			if err != nil {
				return describeErr(err)
			}
			auth, err := p.cfg.RegistryAuth()
			if err != nil {
				return err
			}
			cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
			if err != nil {
				return fmt.Errorf("registry login: no Docker engine: %w", err)
			}
			defer cli.Close()
			if _, err := cli.RegistryLogin(cmd.Context(), registry.AuthConfig{
				ServerAddress: auth.GetServer(), Username: auth.GetUsername(), Password: auth.GetPassword()}); err != nil {
				return fmt.Errorf("registry login to %s as %s failed: %s", auth.GetServer(), auth.GetUsername(), firstLine(err.Error()))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s. Agents receive the credentials with each pull and never store them.\n",
				auth.GetServer(), auth.GetUsername())
			return nil
		},
	}
	logout := &cobra.Command{
		Use: "logout", Short: "Nothing to undo: agents never store registry credentials", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "Agents keep no registry credentials (they travel with each pull); nothing to log out of.")
			return nil
		},
	}
	addTargetFlags(login, &pf)
	cmd.AddCommand(login, logout)
	return cmd
}

func newDeploysCmd() *cobra.Command {
	var o output
	cmd := &cobra.Command{
		Use:   "deploys",
		Short: "List deploys, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			return deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.List(ctx, &deployv1.ListRequest{})
				if err != nil {
					return err
				}
				if o == "json" {
					var list []map[string]any
					for _, d := range resp.GetDeploys() {
						list = append(list, deployJSON(d))
					}
					if list == nil {
						list = []map[string]any{}
					}
					return printJSON(cmd.OutOrStdout(), list)
				}
				var rows [][]string
				for _, d := range resp.GetDeploys() {
					rows = append(rows, []string{d.GetId(), d.GetRequest().GetCommand(), d.GetRequest().GetService(),
						d.GetRequest().GetDestination(), d.GetRequest().GetVersion(), stateName(d.GetState()), d.GetOperator(),
						time.UnixMilli(d.GetCreatedUnixMillis()).UTC().Format(time.RFC3339)})
				}
				return printTable(cmd.OutOrStdout(), []string{"ID", "COMMAND", "SERVICE", "DESTINATION", "VERSION", "STATE", "OPERATOR", "CREATED"}, rows)
			})
		},
	}
	addOutput(cmd, &o)
	show := &cobra.Command{
		Use: "show ID", Short: "Show a deploy and its steps", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.Get(ctx, &deployv1.GetRequest{Id: args[0]})
				if err != nil {
					return err
				}
				prog := &deploy.Progress{W: cmd.OutOrStdout()}
				prog.Update(resp.GetDeploy(), resp.GetSteps())
				if deploy.Ended(resp.GetDeploy().GetState()) {
					prog.Summary(resp.GetDeploy(), resp.GetSteps())
				}
				return nil
			})
		},
	}
	watchCmd := &cobra.Command{
		Use: "watch ID", Short: "Follow a deploy's progress until it ends (from any machine)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := watch(cmd, args[0], nil, "")
			if err != nil {
				return err
			}
			if rec.GetState() != deployv1.State_STATE_SUCCEEDED {
				return fmt.Errorf("deploy %s %s: %s", rec.GetId(), stateName(rec.GetState()), firstLine(rec.GetError()))
			}
			return nil
		},
	}
	cancel := &cobra.Command{
		Use: "cancel ID", Short: "Stop a deploy between steps and release its lock", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.Cancel(ctx, &deployv1.CancelRequest{Id: args[0]})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deploy %s: cancel requested (state %s)\n", args[0], stateName(resp.GetDeploy().GetState()))
				return nil
			})
		},
	}
	cmd.AddCommand(show, watchCmd, cancel)
	return cmd
}

func stateName(s deployv1.State) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STATE_"))
}

func deployJSON(d *deployv1.Record) map[string]any {
	return map[string]any{
		"id": d.GetId(), "command": d.GetRequest().GetCommand(), "service": d.GetRequest().GetService(),
		"destination": d.GetRequest().GetDestination(), "version": d.GetRequest().GetVersion(),
		"state": stateName(d.GetState()), "operator": d.GetOperator(), "error": d.GetError(),
		"created": time.UnixMilli(d.GetCreatedUnixMillis()).UTC().Format(time.RFC3339),
	}
}

func newLockCmd() *cobra.Command {
	var pf targetFlags
	cmd := &cobra.Command{Use: "lock", Short: "Manage the deploy lock of the service"}
	key := func(cmd *cobra.Command) (string, string, error) {
		p, err := loadProject(cmd.Context(), cmd, pf, false)
		if err != nil {
			return "", "", describeErr(err)
		}
		return p.cfg.Service, p.cfg.Destination, nil
	}
	statusCmd := &cobra.Command{
		Use: "status", Short: "Show who holds the deploy lock", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, dest, err := key(cmd)
			if err != nil {
				return err
			}
			return deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.LockStatus(ctx, &deployv1.LockStatusRequest{Service: svc, Destination: dest})
				if err != nil {
					return err
				}
				if resp.GetLock() == nil {
					fmt.Fprintln(cmd.OutOrStdout(), "There is no deploy lock")
					return nil
				}
				fmt.Fprintln(cmd.OutOrStdout(), locks.Describe(resp.GetLock()))
				return nil
			})
		},
	}
	var message string
	acquire := &cobra.Command{
		Use: "acquire -m MESSAGE", Short: "Take the deploy lock by hand", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, dest, err := key(cmd)
			if err != nil {
				return err
			}
			return deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
				if _, err := c.AcquireLock(ctx, &deployv1.AcquireLockRequest{Service: svc, Destination: dest, Message: message}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Acquired the deploy lock of %s\n", locks.Key(svc, dest))
				return nil
			})
		},
	}
	acquire.Flags().StringVarP(&message, "message", "m", "", "why the lock is taken (required)")
	release := &cobra.Command{
		Use: "release", Short: "Release the deploy lock", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, dest, err := key(cmd)
			if err != nil {
				return err
			}
			return deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
				if _, err := c.ReleaseLock(ctx, &deployv1.ReleaseLockRequest{Service: svc, Destination: dest}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Released the deploy lock of %s\n", locks.Key(svc, dest))
				return nil
			})
		},
	}
	for _, c := range []*cobra.Command{statusCmd, acquire, release} {
		addTargetFlags(c, &pf)
		cmd.AddCommand(c)
	}
	return cmd
}

func newAuditCmd() *cobra.Command {
	var (
		o                             output
		service, dest, operator, host string
		since                         time.Duration
		limit                         uint32
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Query the audit history of every action, on any controller",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			in := &deployv1.AuditRequest{Service: service, Destination: dest, Operator: operator, Host: host, Limit: limit}
			if since > 0 {
				in.SinceUnixMillis = time.Now().Add(-since).UnixMilli()
			}
			return deployClient(cmd, func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.Audit(ctx, in)
				if err != nil {
					return err
				}
				if o == "json" {
					list := []map[string]any{}
					for _, e := range resp.GetEntries() {
						list = append(list, map[string]any{
							"time": time.UnixMilli(e.GetUnixMillis()).UTC().Format(time.RFC3339Nano), "operator": e.GetOperator(),
							"service": e.GetService(), "destination": e.GetDestination(), "role": e.GetRole(), "host": e.GetHost(),
							"version": e.GetVersion(), "action": e.GetAction(), "result": e.GetResult(), "deploy": e.GetDeployId(),
							"detail": e.GetDetail(),
						})
					}
					return printJSON(cmd.OutOrStdout(), list)
				}
				var rows [][]string
				for _, e := range resp.GetEntries() {
					rows = append(rows, []string{time.UnixMilli(e.GetUnixMillis()).UTC().Format(time.RFC3339), e.GetOperator(),
						e.GetService(), e.GetDestination(), e.GetRole(), e.GetHost(), e.GetVersion(), e.GetAction(), e.GetResult()})
				}
				return printTable(cmd.OutOrStdout(), []string{"TIME", "OPERATOR", "SERVICE", "DEST", "ROLE", "HOST", "VERSION", "ACTION", "RESULT"}, rows)
			})
		},
	}
	addOutput(cmd, &o)
	cmd.Flags().StringVar(&service, "service", "", "only this service")
	cmd.Flags().StringVarP(&dest, "destination", "d", "", "only this destination")
	cmd.Flags().StringVar(&operator, "operator", "", "only this operator")
	cmd.Flags().StringVar(&host, "host", "", "only this host")
	cmd.Flags().DurationVar(&since, "since", 0, "only entries newer than this (e.g. 24h)")
	cmd.Flags().Uint32Var(&limit, "limit", 0, "at most this many entries (newest)")
	return cmd
}

func newPruneCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "prune", Short: "Prune old containers and images on every host"}
	for _, kind := range []string{"all", "containers", "images"} {
		var pf targetFlags
		var retain int
		c := &cobra.Command{
			Use: kind, Args: cobra.NoArgs, Short: "Prune " + kind,
			RunE: func(cmd *cobra.Command, _ []string) error {
				p, err := loadProject(cmd.Context(), cmd, pf, false)
				if err != nil {
					return describeErr(err)
				}
				if retain > 0 {
					p.cfg.RetainContainers = retain
				}
				return runPrune(cmd, p, kind != "images", kind != "containers")
			},
		}
		addTargetFlags(c, &pf)
		if kind == "containers" {
			c.Flags().IntVar(&retain, "retain", 0, "containers to keep (default retain_containers)")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

// runPrune sends a Prune to every selected app host through the controller.
func runPrune(cmd *cobra.Command, p *project, containers, images bool) error {
	if p.cfg.RetainContainers < 1 {
		return errors.New("retain must be at least 1")
	}
	return onHosts(cmd, p.allHosts(), "pruned", func(string) *agentv1.Operation { return pruneOp(p, containers, images) })
}

// pruneOp is Kamal's prune for the project's service on one host.
func pruneOp(p *project, containers, images bool) *agentv1.Operation {
	return &agentv1.Operation{Op: &agentv1.Operation_Prune{Prune: &agentv1.Prune{
		Service: p.cfg.Service, Retain: uint32(p.cfg.RetainContainers), Containers: containers, Images: images,
		KeepTags: []string{p.cfg.LatestTag()}, Repository: p.cfg.Repository(),
	}}}
}
