package testenv

import (
	"fmt"
	"strings"
)

// DeployYML is a Kamal config/deploy.yml for the test app (./test/app)
// behind the kamal-proxy stand-in (dockertest.BuildProxyImage), pulled
// from a Registry whose password is the secret KAMAL_REGISTRY_PASSWORD.
// String renders it.
type DeployYML struct {
	// Service is the service name.
	Service string
	// Image is the image repository without the registry
	// ("kctl-e2e/<service>").
	Image string
	// Roles are the servers, in order.
	Roles []Role
	// BootLimit sets boot.limit when above 0.
	BootLimit int
	// ProxyRepo is the proxy image's repository.
	ProxyRepo string
	// HTTPPort and HTTPSPort are where the proxy publishes on 127.0.0.1;
	// with HTTPPort 0 it publishes no port.
	HTTPPort, HTTPSPort int
	Registry            Registry
	// BuilderContext sets builder.context when not empty.
	BuilderContext string
	// Env is the YAML of the env section, indented below it, if any.
	Env string
	// Proxy is more YAML of the proxy section (host, ssl), indented below
	// it, if any.
	Proxy string
}

// Role is one role of a DeployYML's servers.
type Role struct {
	Name  string
	Hosts []string
	// Cmd overrides the image's command when not empty.
	Cmd string
}

// String renders the deploy.yml. Every deploy waits for health alike:
// health checks on /up every second with a 5s timeout, a 15s deploy
// timeout, a 2s drain.
func (d DeployYML) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "service: %s\nimage: %s\nservers:\n", d.Service, d.Image)
	for _, r := range d.Roles {
		fmt.Fprintf(&b, "  %s:\n", r.Name)
		indent := "    "
		if r.Cmd != "" {
			b.WriteString("    hosts:\n")
			indent = "      "
		}
		for _, h := range r.Hosts {
			fmt.Fprintf(&b, "%s- %s\n", indent, h)
		}
		if r.Cmd != "" {
			fmt.Fprintf(&b, "    cmd: %s\n", r.Cmd)
		}
	}
	if d.BootLimit > 0 {
		fmt.Fprintf(&b, "boot:\n  limit: %d\n", d.BootLimit)
	}
	fmt.Fprintf(&b, "proxy:\n  app_port: 80\n  healthcheck:\n    path: /up\n    interval: 1\n    timeout: 5\n"+
		"%s  run:\n    repository: %s\n    version: v0.9.2\n", d.Proxy, d.ProxyRepo)
	if d.HTTPPort == 0 {
		b.WriteString("    publish: false\n")
	} else {
		fmt.Fprintf(&b, "    http_port: %d\n    https_port: %d\n    bind_ips:\n      - 127.0.0.1\n", d.HTTPPort, d.HTTPSPort)
	}
	fmt.Fprintf(&b, "registry:\n  server: %s\n  username: %s\n  password:\n    - KAMAL_REGISTRY_PASSWORD\nbuilder:\n  arch: amd64\n",
		d.Registry.Addr, d.Registry.User)
	if d.BuilderContext != "" {
		fmt.Fprintf(&b, "  context: %s\n", d.BuilderContext)
	}
	if d.Env != "" {
		b.WriteString("env:\n" + d.Env)
	}
	b.WriteString("deploy_timeout: 15\ndrain_timeout: 2\nretain_containers: 3\n")
	return b.String()
}
