package docker_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/kctl-dev/kctl/internal/agent/docker"
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
