package docker_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/agent/docker"
	"github.com/kctl-dev/kctl/internal/agent/docker/dockertest"
)

func TestApply_Options(t *testing.T) {
	s, err := docker.Apply([]docker.Flag{
		{"memory", "1.5g"}, {"memory-swap", "-1"}, {"cpus", "0.5"}, {"cap-add", "NET_ADMIN"}, {"cap-drop", "ALL"},
		{"add-host", "host.docker.internal:host-gateway"}, {"device", "/dev/fuse"}, {"ulimit", "nofile=1024:2048"},
		{"shm-size", "256m"}, {"user", "2233:11370"}, {"workdir", "/rails"}, {"publish", "127.0.0.1:8080:80/tcp"},
		{"mount", "type=bind,source=/mnt/x,target=/x,readonly"}, {"tmpfs", "/run:rw,size=64m"}, {"init", "true"},
		{"privileged", "false"}, {"security-opt", "no-new-privileges"}, {"sysctl", "net.core.somaxconn=1024"},
		{"group-add", "60000"}, {"dns", "1.1.1.1"}, {"gpus", "all"}, {"log-driver", "json-file"}, {"log-opt", "max-file=3"},
		{"restart", "on-failure:5"}, {"entrypoint", "/bin/sh"}, {"hostname", "h"}, {"read-only", "true"},
		{"pids-limit", "100"}, {"network", "kamal"}, {"network-alias", "db"}, {"label", "a=b"}, {"env", "X=1"},
		{"volume", "data:/data"}, {"stop-signal", "SIGQUIT"}, {"stop-timeout", "30"}, {"health-cmd", "healthcheck-horizon"},
		{"health-interval", "5s"}, {"health-retries", "3"}, {"expose", "9090"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, c := s.Host, s.Config
	checks := []struct {
		name      string
		got, want any
	}{
		{"memory", h.Memory, int64(1536 << 20)},
		{"memory-swap", h.MemorySwap, int64(-1)},
		{"cpus", h.NanoCPUs, int64(5e8)},
		{"cap-add", []string(h.CapAdd), []string{"NET_ADMIN"}},
		{"cap-drop", []string(h.CapDrop), []string{"ALL"}},
		{"add-host", h.ExtraHosts, []string{"host.docker.internal:host-gateway"}},
		{"device", h.Devices, []container.DeviceMapping{{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"}}},
		{"ulimit", *h.Ulimits[0], container.Ulimit{Name: "nofile", Soft: 1024, Hard: 2048}},
		{"shm-size", h.ShmSize, int64(256 << 20)},
		{"user", c.User, "2233:11370"},
		{"workdir", c.WorkingDir, "/rails"},
		{"publish", h.PortBindings["80/tcp"][0].HostIP + ":" + h.PortBindings["80/tcp"][0].HostPort, "127.0.0.1:8080"},
		{"mount", h.Mounts[0], mount.Mount{Type: "bind", Source: "/mnt/x", Target: "/x", ReadOnly: true}},
		{"tmpfs", h.Tmpfs, map[string]string{"/run": "rw,size=64m"}},
		{"init", *h.Init, true},
		{"privileged", h.Privileged, false},
		{"security-opt", h.SecurityOpt, []string{"no-new-privileges"}},
		{"sysctl", h.Sysctls, map[string]string{"net.core.somaxconn": "1024"}},
		{"group-add", h.GroupAdd, []string{"60000"}},
		{"dns", h.DNS, []string{"1.1.1.1"}},
		{"gpus", h.DeviceRequests[0].Count, -1},
		{"log", h.LogConfig, container.LogConfig{Type: "json-file", Config: map[string]string{"max-file": "3"}}},
		{"restart", h.RestartPolicy, container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 5}},
		{"entrypoint", []string(c.Entrypoint), []string{"/bin/sh"}},
		{"hostname", c.Hostname, "h"},
		{"read-only", h.ReadonlyRootfs, true},
		{"pids-limit", *h.PidsLimit, int64(100)},
		{"network", string(h.NetworkMode), "kamal"},
		{"network-alias", s.Network.EndpointsConfig["kamal"].Aliases, []string{"db"}},
		{"label", c.Labels["a"], "b"},
		{"env", c.Env, []string{"X=1"}},
		{"volume", h.Binds, []string{"data:/data"}},
		{"stop-signal", c.StopSignal, "SIGQUIT"},
		{"stop-timeout", *c.StopTimeout, 30},
		{"health-cmd", c.Healthcheck.Test, []string{"CMD-SHELL", "healthcheck-horizon"}},
		{"health-interval", c.Healthcheck.Interval, 5 * time.Second},
		{"health-retries", c.Healthcheck.Retries, 3},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("--%s: got %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	if _, ok := c.ExposedPorts["9090/tcp"]; !ok {
		t.Errorf("--expose 9090: exposed ports %v", c.ExposedPorts)
	}
}

func TestApply_UnknownAndInvalid(t *testing.T) {
	_, err := docker.Apply([]docker.Flag{{"memory", "1g"}, {"frobnicate", "x"}, {"wat", ""}})
	if err == nil || !strings.Contains(err.Error(), "--frobnicate, --wat") {
		t.Errorf("Apply(unknown) = %v, want an error naming --frobnicate, --wat", err)
	}
	_, err = docker.Apply([]docker.Flag{{"memory", "lots"}})
	if err == nil || !strings.Contains(err.Error(), "--memory") {
		t.Errorf("Apply(--memory lots) = %v, want an error naming --memory", err)
	}
}

// corpusRun is one docker run line from the corpus of real configs.
type corpusRun struct {
	file, what string
	args       []string
}

func corpusRuns(t *testing.T) []corpusRun {
	t.Helper()
	var files []string
	for _, dir := range []string{os.Getenv("KCTL_CORPUS"), "../../../../shared/corpus/kamal-configs", "../../../../../shared/corpus/kamal-configs"} {
		if dir == "" {
			continue
		}
		a, _ := filepath.Glob(filepath.Join(dir, "*/config/*.expected.json"))
		b, _ := filepath.Glob(filepath.Join(dir, "*/*/config/*.expected.json"))
		if files = append(a, b...); len(files) > 0 {
			break
		}
	}
	if len(files) == 0 {
		dockertest.Require(t, "corpus of Kamal configs not found (set KCTL_CORPUS to shared/corpus/kamal-configs)")
	}
	var out []corpusRun
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Roles map[string]struct {
				DockerRun []string `json:"docker_run"`
			} `json:"roles"`
			Accessories map[string]struct {
				DockerRun []string `json:"docker_run"`
			} `json:"accessories"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for r, v := range doc.Roles {
			out = append(out, corpusRun{f, "role " + r, v.DockerRun})
		}
		for a, v := range doc.Accessories {
			out = append(out, corpusRun{f, "accessory " + a, v.DockerRun})
		}
	}
	return out
}

// Every docker run line Kamal renders for the corpus translates.
func TestParseRunArgs_Corpus(t *testing.T) {
	runs := corpusRuns(t)
	var translated, invalid int
	for _, r := range runs {
		if len(r.args) == 0 {
			continue // a role without hosts
		}
		flags, image, _, err := docker.ParseRunArgs(r.args)
		if err != nil {
			t.Errorf("%s %s: ParseRunArgs: %v", r.file, r.what, err)
			continue
		}
		if image == "" {
			t.Errorf("%s %s: no image in %q", r.file, r.what, r.args)
		}
		switch _, err := docker.Apply(flags); {
		case errors.Is(err, docker.ErrBadOption):
			// Docker refuses these too (e.g. an unrendered `env-PORT:4000`).
			invalid++
			t.Logf("%s %s: %v", r.file, r.what, err)
		case err != nil:
			t.Errorf("%s %s: Apply: %v", r.file, r.what, err)
		default:
			translated++
		}
	}
	t.Logf("%d docker run lines translated, %d refused for values Docker refuses", translated, invalid)
}

// A spec built by hand for a corpus role translates to exactly what Kamal's
// rendered docker run line translates to.
func TestTranslate_AgreesWithKamalRender(t *testing.T) {
	rendered := []string{"docker", "run", "--detach", "--restart", "unless-stopped", "--name", "repository-web-production-v1", "--network", "kamal", "--hostname", "HOST", "--env", "KAMAL_CONTAINER_NAME=\"repository-web-production-v1\"", "--env", "KAMAL_VERSION=\"v1\"", "--env", "KAMAL_HOST=\"repository-production\"", "--env", "KAMAL_DESTINATION=\"production\"", "--env", "JOB_CONCURRENCY=\"4\"", "--env", "TZ=\"Asia/Tokyo\"", "--env-file", ".kamal/apps/repository-production/env/roles/web.env", "--log-opt", "max-size=\"10m\"", "--volume", "$PWD/.kamal/apps/repository-production/assets/volumes/web-v1:/rails/public/web/assets", "--label", "service=\"repository\"", "--label", "role=\"web\"", "--label", "destination=\"production\"", "--group-add", "\"60000\"", "--mount", "\"type=bind,source=/mnt/submission,target=/submission\"", "--mount", "\"type=bind,source=/lustre9/open/home/ddbjshare,target=/ddbjshare,readonly\"", "w3const/repository:v1", "bin/jobs --verbose"}
	spec := &specv1.Container{
		Kind: specv1.ContainerKind_CONTAINER_KIND_APP, Name: "repository-web-production-v1", Image: "w3const/repository:v1",
		Restart: "unless-stopped", Network: "kamal", Hostname: "HOST",
		Env: []*specv1.KeyValue{
			{Key: "KAMAL_CONTAINER_NAME", Value: "repository-web-production-v1"}, {Key: "KAMAL_VERSION", Value: "v1"},
			{Key: "KAMAL_HOST", Value: "repository-production"}, {Key: "KAMAL_DESTINATION", Value: "production"},
			{Key: "JOB_CONCURRENCY", Value: "4"}, {Key: "TZ", Value: "Asia/Tokyo"},
		},
		EnvFile: ".kamal/apps/repository-production/env/roles/web.env",
		Logging: &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m"}}},
		Volumes: []string{"$PWD/.kamal/apps/repository-production/assets/volumes/web-v1:/rails/public/web/assets"},
		Labels:  []*specv1.KeyValue{{Key: "service", Value: "repository"}, {Key: "role", Value: "web"}, {Key: "destination", Value: "production"}},
		Options: []*specv1.Option{
			{Name: "group-add", Value: "60000"},
			{Name: "mount", Value: "type=bind,source=/mnt/submission,target=/submission"},
			{Name: "mount", Value: "type=bind,source=/lustre9/open/home/ddbjshare,target=/ddbjshare,readonly"},
		},
		Cmd:     "bin/jobs --verbose",
		Service: "repository", Role: "web", Destination: "production", Version: "v1",
	}
	flags, image, cmd, err := docker.ParseRunArgs(rendered)
	if err != nil {
		t.Fatal(err)
	}
	fromRender, err := docker.Apply(flags)
	if err != nil {
		t.Fatal(err)
	}
	fromRender.Config.Image = image
	fromRender.Config.Cmd = cmd
	rt, err := docker.New(docker.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fromSpec, err := rt.Translate(spec)
	if err != nil {
		t.Fatal(err)
	}
	delete(fromSpec.Config.Labels, docker.LabelSpec)
	// The agent maps $PWD to its data dir; compare before that mapping.
	fromRender.Host.Binds = nil
	fromSpec.Host.Binds = nil
	if fromRender.EnvFile != spec.GetEnvFile() {
		t.Errorf("env-file = %q, want %q", fromRender.EnvFile, spec.GetEnvFile())
	}
	fromRender.EnvFile = ""
	for _, part := range []struct {
		name      string
		got, want any
	}{
		{"name", fromSpec.Name, fromRender.Name},
		{"config", fromSpec.Config, fromRender.Config},
		{"host config", fromSpec.Host, fromRender.Host},
		{"networking", fromSpec.Network, fromRender.Network},
	} {
		if !reflect.DeepEqual(part.got, part.want) {
			g, _ := json.Marshal(part.got)
			w, _ := json.Marshal(part.want)
			t.Errorf("%s from spec != from Kamal's render:\n got %s\nwant %s", part.name, g, w)
		}
	}
}
