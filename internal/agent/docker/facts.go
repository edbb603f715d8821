package docker

import (
	"context"
	"os"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	"github.com/kctl-dev/kctl/internal/version"
)

// AgentVersion is reported in facts: the build's stamped version.
var AgentVersion = version.Version

// GatherFacts reports the server: OS, arch, Docker version, and every
// kctl-managed container (Kamal's `service`-labelled apps and accessories
// plus the proxy) with labels, state, health and image.
func (r *Runtime) GatherFacts(ctx context.Context) (*agentv1.Facts, error) {
	info, err := r.cli.Info(ctx)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	f := &agentv1.Facts{
		Hostname:      host,
		Os:            info.OperatingSystem,
		Arch:          info.Architecture,
		DockerVersion: info.ServerVersion,
		AgentVersion:  AgentVersion,
	}
	seen := map[string]bool{}
	var list []container.Summary
	for _, fl := range []filters.Args{
		r.agentFilter(filters.NewArgs(filters.Arg("label", "service"))),
		filters.NewArgs(filters.Arg("name", engineNameFilter(r.cfg.ProxyName))),
	} {
		cs, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: fl})
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if !seen[c.ID] {
				seen[c.ID] = true
				list = append(list, c)
			}
		}
	}
	factName := func(c container.Summary) string {
		if n := r.name(c); n != "" {
			return n
		}
		return strings.TrimPrefix(c.Names[0], "/") // the proxy: named by ProxyName
	}
	var kept []container.Summary
	for _, c := range list {
		if len(c.Names) > 0 && (r.name(c) != "" || strings.TrimPrefix(c.Names[0], "/") == r.cfg.ProxyName) {
			kept = append(kept, c)
		}
	}
	list = kept
	sort.Slice(list, func(i, j int) bool { return factName(list[i]) < factName(list[j]) })
	for _, c := range list {
		cf := &agentv1.ContainerFact{
			Id: c.ID, Name: factName(c), Image: c.Image, State: c.State,
			Labels: c.Labels, CreatedUnix: c.Created,
		}
		if c.State == "running" {
			if in, err := r.cli.ContainerInspect(ctx, c.ID); err == nil && in.State != nil && in.State.Health != nil {
				cf.Health = in.State.Health.Status
			}
		}
		f.Containers = append(f.Containers, cf)
	}
	return f, nil
}

// listImages is `docker image ls REPO` for each repository, newest first.
func (r *Runtime) listImages(ctx context.Context, repos []string) ([]*agentv1.ImageFact, error) {
	var out []*agentv1.ImageFact
	seen := map[string]bool{}
	for _, repo := range repos {
		list, err := r.cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", repo))})
		if err != nil {
			return nil, err
		}
		sort.SliceStable(list, func(i, j int) bool { return list[i].Created > list[j].Created })
		for _, im := range list {
			if !seen[im.ID] {
				seen[im.ID] = true
				out = append(out, &agentv1.ImageFact{Id: im.ID, RepoTags: im.RepoTags, CreatedUnix: im.Created, Size: im.Size})
			}
		}
	}
	return out, nil
}
