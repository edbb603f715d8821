package kctl

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/builder"
	"github.com/kctl-dev/kctl/internal/hooks"
)

func newBuildCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "build", Short: "Build, push and pull the app image"}
	cmd.AddCommand(newBuildPushCmd(g), newBuildPullCmd(g), newBuildDeliverCmd(g))
	return cmd
}

// newProjectCmd makes a command that reads the project in the working
// directory (Kamal's global options, see targetFlags) and runs run on it;
// needVersion resolves the version as loadProject does.
func newProjectCmd(use, short string, needVersion bool, run func(cmd *cobra.Command, p *project) error) *cobra.Command {
	var pf targetFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProject(cmd.Context(), cmd, pf, needVersion)
			if err != nil {
				return describeErr(err)
			}
			return run(cmd, p)
		},
	}
	addTargetFlags(cmd, &pf)
	return cmd
}

// newBuildStepCmd makes build push, pull and deliver: push builds and
// pushes the image, pull has every host pull it.
func newBuildStepCmd(g *globals, use, short string, push, pull bool) *cobra.Command {
	var noCache bool
	c := newProjectCmd(use, short, true, func(cmd *cobra.Command, p *project) error {
		if push {
			if err := buildAndPush(cmd.Context(), cmd, p, "build", noCache); err != nil {
				return err
			}
		}
		if pull {
			return g.pullOnHosts(cmd, p)
		}
		return nil
	})
	if push {
		c.Flags().BoolVar(&noCache, "no-cache", false, "build without the Docker cache")
	}
	return c
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
