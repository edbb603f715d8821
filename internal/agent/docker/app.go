package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/errdefs"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/proxy"
)

// EnsureNetwork creates the network if it does not exist
// (`docker network create kamal`, "already exists" ignored).
func (r *Runtime) EnsureNetwork(ctx context.Context, name string) error {
	if name == "" {
		name = "kamal"
	}
	if _, err := r.cli.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		return nil
	}
	_, err := r.cli.NetworkCreate(ctx, name, network.CreateOptions{})
	if err != nil && !errdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("network create %s: %w", name, err)
	}
	return nil
}

func encodeAuth(a *specv1.RegistryAuth) string {
	if a == nil || a.GetUsername() == "" {
		return ""
	}
	b, _ := json.Marshal(registry.AuthConfig{Username: a.GetUsername(), Password: a.GetPassword(), ServerAddress: a.GetServer()})
	return base64.URLEncoding.EncodeToString(b)
}

// pull pulls ref with auth; credentials only travel in the API request
// header, never to disk.
func (r *Runtime) pull(ctx context.Context, ref string, auth *specv1.RegistryAuth) error {
	rc, err := r.cli.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: encodeAuth(auth)})
	if err != nil {
		return classifyPull(ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		if msg.Error != "" {
			return classifyPull(ref, errors.New(msg.Error))
		}
	}
}

func classifyPull(ref string, err error) error {
	s := err.Error()
	if strings.Contains(s, "unauthorized") || strings.Contains(s, "authentication required") || strings.Contains(s, "no basic auth credentials") {
		return fmt.Errorf("%w: pull %s: %v", ErrRegistryLogin, ref, err)
	}
	if errdefs.IsNotFound(err) || strings.Contains(s, "not found") || strings.Contains(s, "manifest unknown") {
		return fmt.Errorf("%w: pull %s: %v", ErrImageMissing, ref, err)
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}

// PullImage pulls the image (logging in with the controller's credentials)
// and checks its `service` label as Kamal does.
func (r *Runtime) PullImage(ctx context.Context, p *agentv1.PullImage) error {
	if err := r.pull(ctx, p.GetImage(), p.GetAuth()); err != nil {
		return err
	}
	if p.GetService() == "" {
		return nil
	}
	ii, err := r.cli.ImageInspect(ctx, p.GetImage())
	if err != nil {
		return fmt.Errorf("inspect %s: %w", p.GetImage(), err)
	}
	if ii.Config == nil || ii.Config.Labels["service"] != p.GetService() {
		return fmt.Errorf("%w: Image %s is missing the 'service' label", ErrServiceLabel, p.GetImage())
	}
	return nil
}

// prefix is `<service>-<role>[-<dest>]`.
func prefix(service, role, dest string) string {
	p := service + "-" + role
	if dest != "" {
		p += "-" + dest
	}
	return p
}

// roleFilter selects a role's containers by Kamal's labels.
func (r *Runtime) roleFilter(service, role, dest string) filters.Args {
	f := filters.NewArgs(filters.Arg("label", "service="+service), filters.Arg("label", "role="+role))
	f.Add("label", "destination="+dest)
	return r.agentFilter(f)
}

// currentContainer finds the role's current running container as Kamal
// does (§3.2): running/restarting containers with the labels, newest first,
// preferring one whose image is `latest[-dest]`; exclude is skipped.
func (r *Runtime) currentContainer(ctx context.Context, service, role, dest, latestImage, exclude string) (*container.Summary, error) {
	f := r.roleFilter(service, role, dest)
	f.Add("status", "running")
	f.Add("status", "restarting")
	list, err := r.cli.ContainerList(ctx, container.ListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Created > list[j].Created })
	var latestID string
	if latestImage != "" {
		if ii, err := r.cli.ImageInspect(ctx, latestImage); err == nil {
			latestID = ii.ID
		}
	}
	var first *container.Summary
	p := prefix(service, role, dest) + "-"
	for i := range list {
		if list[i].ID == exclude || !strings.HasPrefix(r.name(list[i]), p) {
			continue
		}
		if latestID != "" && list[i].ImageID == latestID {
			return &list[i], nil
		}
		if first == nil {
			first = &list[i]
		}
	}
	return first, nil
}

func stopTimeout(p *specv1.StopPolicy) *int {
	if p == nil || !p.GetHasTimeout() {
		return nil
	}
	t := int(p.GetTimeout())
	return &t
}

// BootApp is Kamal's per-host, per-role boot (§3.4 step 5).
func (r *Runtime) BootApp(ctx context.Context, b *agentv1.BootApp) (*agentv1.Result, error) {
	c := b.GetContainer()
	s, err := r.Translate(c)
	if err != nil {
		return failed(ctx, err)
	}
	if err := r.checkImage(ctx, c.GetImage()); err != nil {
		return failed(ctx, err)
	}
	pfx := prefix(c.GetService(), c.GetRole(), c.GetDestination())
	if err := r.prepareAppAssets(ctx, c, pfx); err != nil {
		return failed(ctx, err)
	}
	resumeID, err := r.claimName(ctx, s)
	if err != nil {
		return failed(ctx, err)
	}
	old, err := r.oldVersion(ctx, c, pfx, resumeID)
	if err != nil {
		return failed(ctx, err)
	}
	newID, err := r.startApp(ctx, c, s, resumeID)
	if err != nil {
		return failed(ctx, err)
	}
	if bootErr := r.cutover(ctx, b, newID); bootErr != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// 6. Failure: stop the NEW container; the old one keeps serving.
		sctx := context.WithoutCancel(ctx)
		logs := r.lastLogs(sctx, newID, 20)
		_ = r.stopContainer(sctx, newID, stopTimeout(b.GetStop()))
		return &agentv1.Result{Ok: false, Error: oneLine(fmt.Sprintf("Failed to boot %s: %v", s.Name, bootErr)), Detail: logs, ContainerId: newID}, nil
	}

	// 7. Success: stop the old version.
	if old != nil && old.ID != newID {
		r.cfg.Logf("stopping old container %s", r.name(*old))
		if err := r.stopContainer(ctx, old.ID, stopTimeout(b.GetStop())); err != nil {
			return failed(ctx, fmt.Errorf("stop old %s: %w", r.name(*old), err))
		}
	}
	if c.GetAssetPath() != "" {
		r.cleanAssets(c)
	}
	return &agentv1.Result{Ok: true, ContainerId: newID}, nil
}

// checkImage fails with ErrImageMissing when image has not been pulled.
func (r *Runtime) checkImage(ctx context.Context, image string) error {
	_, err := r.cli.ImageInspect(ctx, image)
	if err != nil && isNotFound(err) {
		return fmt.Errorf("%w: %s (pull it first)", ErrImageMissing, image)
	}
	return err
}

// prepareAppAssets prepares the role's assets before anything starts
// (Kamal §3.4 step 2), cross-copied with the currently running version.
func (r *Runtime) prepareAppAssets(ctx context.Context, c *specv1.Container, pfx string) error {
	if c.GetAssetPath() == "" {
		return nil
	}
	oldVersion := ""
	if cur, err := r.currentContainer(ctx, c.GetService(), c.GetRole(), c.GetDestination(), "", ""); err == nil && cur != nil {
		oldVersion = strings.TrimPrefix(r.name(*cur), pfx+"-")
	}
	return r.prepareAssets(ctx, c, oldVersion)
}

// claimName is step 1: a container already named <prefix>-<version> that
// is ours from an interrupted run (same spec) is resumed (its ID is
// returned); anything else is renamed `_replaced_<16 hex>` as Kamal does.
func (r *Runtime) claimName(ctx context.Context, s *Spec) (string, error) {
	existing, err := r.findSpec(ctx, s.Name)
	if err != nil || existing == nil {
		return "", err
	}
	if existing.Labels[LabelSpec] == s.Config.Labels[LabelSpec] {
		r.cfg.Logf("resuming container %s", s.Name)
		return existing.ID, nil
	}
	replaced := s.Name + "_replaced_" + randHex(16)
	r.cfg.Logf("Renaming container %s to %s", s.Name, replaced)
	if err := r.cli.ContainerRename(ctx, existing.ID, r.engineName(replaced)); err != nil {
		return "", fmt.Errorf("rename %s: %w", s.Name, err)
	}
	return "", nil
}

// oldVersion is step 2: the role's running container other than newID
// (nil when there is none of this prefix).
func (r *Runtime) oldVersion(ctx context.Context, c *specv1.Container, pfx, newID string) (*container.Summary, error) {
	latest := ""
	if repo, _, ok := cutTag(c.GetImage()); ok {
		latest = repo + ":latest"
		if c.GetDestination() != "" {
			latest += "-" + c.GetDestination()
		}
	}
	old, err := r.currentContainer(ctx, c.GetService(), c.GetRole(), c.GetDestination(), latest, newID)
	if err != nil || old == nil || !strings.HasPrefix(r.name(*old), pfx+"-") {
		return nil, err
	}
	return old, nil
}

// startApp is steps 3 and 4: write the env file (0600), create the
// container unless resumed, and start it. A container that fails to start
// is removed, so nothing is left half-started.
func (r *Runtime) startApp(ctx context.Context, c *specv1.Container, s *Spec, resumeID string) (string, error) {
	if err := r.writeEnvFile(c); err != nil {
		return "", fmt.Errorf("env file: %w", err)
	}
	id := resumeID
	if id == "" {
		var err error
		if id, err = r.create(ctx, s); err != nil {
			return "", err
		}
	}
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true})
		return "", fmt.Errorf("start %s: %w", s.Name, err)
	}
	return id, nil
}

// cutover is step 5: deploy the new container to kamal-proxy, or wait for
// it to be ready when the role runs without the proxy.
func (r *Runtime) cutover(ctx context.Context, b *agentv1.BootApp, newID string) error {
	p := b.GetProxy()
	if p == nil {
		return r.waitReady(ctx, newID, b.GetReadiness())
	}
	if err := r.writeProxyFiles(p.GetFiles()); err != nil {
		return err
	}
	port := p.GetAppPort()
	if port == 0 {
		port = 80
	}
	return r.proxy.Deploy(ctx, p.GetService(), fmt.Sprintf("%s:%d", newID[:12], port), p.GetFlags())
}

// cutTag splits `repo:tag` (a registry port is not a tag).
func cutTag(ref string) (repo, tag string, ok bool) {
	i := strings.LastIndexByte(ref, ':')
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "", false
	}
	return ref[:i], ref[i+1:], true
}

// waitReady is Kamal's readiness poll for roles without a proxy: healthy is
// ready; running is ready after readiness_delay and a re-check; sleeps 1,
// 2, 3… s until deploy_timeout.
func (r *Runtime) waitReady(ctx context.Context, id string, rd *specv1.Readiness) error {
	timeout := time.Duration(rd.GetDeployTimeout()) * time.Second
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	delay := time.Duration(rd.GetReadinessDelay()) * time.Second
	deadline := time.Now().Add(timeout)
	status := ""
	for attempt := 1; ; attempt++ {
		in, err := r.cli.ContainerInspect(ctx, id)
		if err != nil {
			return err
		}
		status = in.State.Status
		if in.State.Health != nil {
			status = in.State.Health.Status
		}
		switch status {
		case "healthy":
			return nil
		case "running":
			if err := sleepCtx(ctx, delay); err != nil {
				return err
			}
			in, err := r.cli.ContainerInspect(ctx, id)
			if err != nil {
				return err
			}
			if in.State.Running && (in.State.Health == nil || in.State.Health.Status != "unhealthy") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: container not ready after %d seconds (%s)", ErrNotReady, int(timeout/time.Second), status)
		}
		wait := time.Duration(attempt) * r.cfg.PollInterval
		if rem := time.Until(deadline); wait > rem {
			wait = rem
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
	}
}

// roleContainers lists the role's containers with their versions.
func (r *Runtime) roleContainers(ctx context.Context, service, role, dest string, all bool) ([]container.Summary, []string, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: all, Filters: r.roleFilter(service, role, dest)})
	if err != nil {
		return nil, nil, err
	}
	p := prefix(service, role, dest) + "-"
	var out []container.Summary
	var versions []string
	for _, c := range list {
		n := r.name(c)
		if !strings.HasPrefix(n, p) {
			continue
		}
		out = append(out, c)
		versions = append(versions, strings.TrimPrefix(n, p))
	}
	return out, versions, nil
}

// StopStale stops running containers of the role whose version is not the
// given one (`kamal app stale_containers --stop`).
func (r *Runtime) StopStale(ctx context.Context, s *agentv1.StopStale) error {
	list, versions, err := r.roleContainers(ctx, s.GetService(), s.GetRole(), s.GetDestination(), false)
	if err != nil {
		return err
	}
	keep := s.GetVersion()
	if keep == "" {
		cur, err := r.currentContainer(ctx, s.GetService(), s.GetRole(), s.GetDestination(), s.GetLatestImage(), "")
		if err != nil {
			return err
		}
		if cur == nil {
			return nil
		}
		keep = strings.TrimPrefix(r.name(*cur), prefix(s.GetService(), s.GetRole(), s.GetDestination())+"-")
	}
	for i, c := range list {
		if versions[i] == keep {
			continue
		}
		r.cfg.Logf("stopping stale container %s", r.name(c))
		if err := r.stopContainer(ctx, c.ID, stopTimeout(s.GetStop())); err != nil {
			return fmt.Errorf("stop %s: %w", r.name(c), err)
		}
	}
	return nil
}

// ListVersions reports the versions present as containers of the role.
func (r *Runtime) ListVersions(ctx context.Context, l *agentv1.ListVersions) ([]string, error) {
	list, versions, err := r.roleContainers(ctx, l.GetService(), l.GetRole(), l.GetDestination(), true)
	if err != nil {
		return nil, err
	}
	// Newest container first (what rollback offers first); displaced
	// `_replaced_` containers are not versions.
	idx := make([]int, len(list))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return list[idx[a]].Created > list[idx[b]].Created })
	var out []string
	seen := map[string]bool{}
	for _, i := range idx {
		v := versions[i]
		if strings.Contains(v, "_replaced_") || seen[v] {
			continue
		}
		seen[v] = true
		out = append(out, v)
	}
	return out, nil
}

// AppControl starts, stops or removes the role's containers.
func (r *Runtime) AppControl(ctx context.Context, a *agentv1.AppControl) error {
	pfx := prefix(a.GetService(), a.GetRole(), a.GetDestination())
	switch a.GetAction() {
	case agentv1.AppControl_ACTION_START:
		return r.startRole(ctx, a, pfx)
	case agentv1.AppControl_ACTION_STOP, agentv1.AppControl_ACTION_REMOVE:
		list, versions, err := r.roleContainers(ctx, a.GetService(), a.GetRole(), a.GetDestination(), true)
		if err != nil {
			return err
		}
		if a.GetVersion() == "" {
			// Kamal's `app stop`/`app remove`: `kamal-proxy remove <prefix>`
			// first when the role runs behind the proxy (its proxy service
			// is the prefix; roles without a proxy are not registered).
			if err := r.proxyRemoveIfRegistered(ctx, pfx, list); err != nil {
				return err
			}
		}
		for i, c := range list {
			if a.GetVersion() != "" && versions[i] != a.GetVersion() {
				continue
			}
			if a.GetAction() == agentv1.AppControl_ACTION_STOP {
				if c.State == "running" || c.State == "restarting" {
					if err := r.stopContainer(ctx, c.ID, nil); err != nil {
						return err
					}
				}
				continue
			}
			if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !isNotFound(err) {
				return err
			}
		}
		return nil
	case agentv1.AppControl_ACTION_REMOVE_DIRECTORY:
		return r.removeAppDirectories(a.GetService(), a.GetDestination())
	}
	return fmt.Errorf("%w: app action %v", ErrBadOperation, a.GetAction())
}

// removeAppDirectories is Kamal's `app remove_app_directories`: the
// service's `.kamal/apps/<svc>[-<dest>]` (env files, assets) and its
// kamal-proxy apps-config directory, both under the data dir.
func (r *Runtime) removeAppDirectories(service, dest string) error {
	name := service
	if dest != "" {
		name += "-" + dest
	}
	if service == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return fmt.Errorf("%w: app directory of service %q", ErrBadOperation, name)
	}
	for _, dir := range []string{filepath.Join(r.cfg.DataDir, ".kamal", "apps", name), filepath.Join(r.AppsConfigDir(), name)} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	return nil
}

// startRole starts the role's container of a.version (the newest one when
// empty) and deploys it to kamal-proxy when a.proxy is set.
func (r *Runtime) startRole(ctx context.Context, a *agentv1.AppControl, pfx string) error {
	var c *container.Summary
	if a.GetVersion() != "" {
		var err error
		if c, err = r.findSpec(ctx, pfx+"-"+a.GetVersion()); err != nil {
			return err
		}
	} else {
		list, versions, err := r.roleContainers(ctx, a.GetService(), a.GetRole(), a.GetDestination(), true)
		if err != nil {
			return err
		}
		for i := range list {
			if strings.Contains(versions[i], "_replaced_") || (c != nil && list[i].Created <= c.Created) {
				continue
			}
			c = &list[i]
		}
	}
	if c == nil {
		return fmt.Errorf("%w: %s-%s", ErrNoContainer, pfx, a.GetVersion())
	}
	if err := r.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", r.name(*c), err)
	}
	p := a.GetProxy()
	if p == nil {
		return nil
	}
	port := p.GetAppPort()
	if port == 0 {
		port = 80
	}
	return r.proxy.Deploy(ctx, p.GetService(), fmt.Sprintf("%s:%d", c.ID[:12], port), p.GetFlags())
}

// TagLatest tags `<repo>:<version>` as `<repo>:<tag>`.
func (r *Runtime) TagLatest(ctx context.Context, t *agentv1.TagLatest) error {
	tag := t.GetTag()
	if tag == "" {
		tag = "latest"
	}
	src := t.GetRepository() + ":" + t.GetVersion()
	if err := r.cli.ImageTag(ctx, src, t.GetRepository()+":"+tag); err != nil {
		return fmt.Errorf("tag %s: %w", src, err)
	}
	return nil
}

// Prune is Kamal's prune (§3.9): stopped containers of the service beyond
// the newest `retain` are removed (across roles and destinations); then
// dangling images, then every image of the service that no container uses
// and that is not one of keep_tags (latest[-dest]).
func (r *Runtime) Prune(ctx context.Context, p *agentv1.Prune) error {
	svc := p.GetService()
	if svc == "" {
		return fmt.Errorf("%w: prune needs a service", ErrBadOperation)
	}
	if p.GetContainers() {
		f := r.agentFilter(filters.NewArgs(filters.Arg("label", "service="+svc),
			filters.Arg("status", "created"), filters.Arg("status", "exited"), filters.Arg("status", "dead")))
		all, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			return err
		}
		// Only containers named by this runtime (its NamePrefix) count.
		var list []container.Summary
		for _, c := range all {
			if r.name(c) != "" {
				list = append(list, c)
			}
		}
		sort.SliceStable(list, func(i, j int) bool { return list[i].Created > list[j].Created })
		for i, c := range list {
			if i < int(p.GetRetain()) {
				continue
			}
			r.cfg.Logf("pruning container %s", r.name(c))
			if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{}); err != nil && !isNotFound(err) {
				return fmt.Errorf("remove %s: %w", r.name(c), err)
			}
		}
	}
	if p.GetImages() {
		if err := r.imagesPrune(ctx, filters.NewArgs(filters.Arg("label", "service="+svc), filters.Arg("dangling", "true"))); err != nil {
			return fmt.Errorf("image prune: %w", err)
		}
		used := map[string]bool{}
		cs, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "service="+svc))})
		if err != nil {
			return err
		}
		for _, c := range cs {
			used[c.Image] = true
			used[c.ImageID] = true
		}
		keep := map[string]bool{}
		for _, t := range p.GetKeepTags() {
			keep[t] = true
		}
		imgs, err := r.cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "service="+svc))})
		if err != nil {
			return err
		}
		for _, im := range imgs {
			for _, ref := range im.RepoTags {
				if strings.HasPrefix(ref, "<none>") {
					continue
				}
				repo, tag, _ := cutTag(ref)
				if p.GetRepository() != "" && repo != p.GetRepository() {
					continue
				}
				if used[ref] || keep[tag] {
					continue
				}
				r.cfg.Logf("pruning image %s", ref)
				if _, err := r.cli.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) && !errdefs.IsConflict(err) {
					return fmt.Errorf("image rm %s: %w", ref, err)
				}
			}
		}
	}
	return nil
}

// proxyRemoveIfRegistered runs `kamal-proxy remove <service>` when a
// container of the role is running and the proxy is up; a service the proxy
// does not know is not an error here.
func (r *Runtime) proxyRemoveIfRegistered(ctx context.Context, service string, list []container.Summary) error {
	running := false
	for _, c := range list {
		running = running || c.State == "running"
	}
	if !running {
		return nil
	}
	in, err := r.cli.ContainerInspect(ctx, r.cfg.ProxyName)
	if err != nil || !in.State.Running {
		return nil
	}
	if err := r.proxy.Remove(ctx, service); err != nil && !errors.Is(err, proxy.ErrServiceNotFound) {
		return err
	}
	return nil
}

// imagesPrune is `docker image prune`, waiting while another prune runs on
// the engine (the daemon allows one at a time: "a prune operation is already
// running"), e.g. a cron job's or another agent's sharing the engine.
func (r *Runtime) imagesPrune(ctx context.Context, f filters.Args) error {
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 1; ; attempt++ {
		_, err := r.cli.ImagesPrune(ctx, f)
		if err == nil || !strings.Contains(err.Error(), "prune operation is already running") || time.Now().After(deadline) {
			return err
		}
		if err := sleepCtx(ctx, time.Duration(min(attempt, 10))*100*time.Millisecond); err != nil {
			return err
		}
	}
}
