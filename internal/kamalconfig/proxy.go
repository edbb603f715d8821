package kamalconfig

import (
	"fmt"
	"path"
	"strings"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
	"github.com/kctl-dev/kctl/internal/spec"
)

func customSSL(proxy *yaml11.Value) bool {
	ssl := proxy.Get("ssl")
	return ssl != nil && ssl.Kind == yaml11.KindMap && ssl.Get("certificate_pem").Present() && ssl.Get("private_key_pem").Present()
}

func proxyHosts(proxy *yaml11.Value) []string {
	if hs := proxy.Get("hosts"); hs != nil && hs.Kind == yaml11.KindSeq {
		return hs.Strings()
	}
	if h := proxy.Get("host"); h != nil && h.Kind == yaml11.KindString {
		return strings.Split(h.Str, ",")
	}
	return []string{}
}

func pathPrefixes(proxy *yaml11.Value) []string {
	if hs := proxy.Get("path_prefixes"); hs != nil && hs.Kind == yaml11.KindSeq {
		return hs.Strings()
	}
	if h := proxy.Get("path_prefix"); h != nil && h.Kind == yaml11.KindString {
		return strings.Split(h.Str, ",")
	}
	return nil
}

// proxyRun returns the proxy.run configuration in effect on host, if any.
func (c *Config) proxyRun(host string) *yaml11.Value {
	for _, r := range c.Roles {
		if !r.RunningProxy {
			continue
		}
		for _, h := range r.Hosts {
			if h == host {
				if run := r.Proxy.Get("run"); run.Present() {
					return run
				}
			}
		}
	}
	for _, a := range c.Accessories {
		if a.Proxy == nil {
			continue
		}
		for _, h := range a.Hosts {
			if h == host {
				if run := a.Proxy.Get("run"); run.Present() {
					return run
				}
			}
		}
	}
	return nil
}

func seconds(v *yaml11.Value) string {
	if v == nil || v.IsNull() || v.IsFalse() {
		return ""
	}
	if !v.Present() && !(v.Kind == yaml11.KindInt && v.Int == 0) {
		return ""
	}
	return v.S() + "s"
}

// proxyFlags formats kamal-proxy deploy options as Kamal's optionize(with: "=").
type flagList []string

func (f *flagList) add(name string, v any) {
	switch x := v.(type) {
	case nil:
	case bool:
		if x {
			*f = append(*f, "--"+name)
		} else {
			*f = append(*f, "--"+name+"="+quote("false"))
		}
	case string:
		*f = append(*f, "--"+name+"="+quote(x))
	case []string:
		for _, s := range x {
			*f = append(*f, "--"+name+"="+quote(s))
		}
	case *yaml11.Value:
		if x == nil || x.IsNull() {
			return
		}
		switch x.Kind {
		case yaml11.KindBool:
			f.add(name, x.Bool)
		case yaml11.KindSeq:
			for _, e := range x.Seq {
				f.add(name, e)
			}
		default:
			f.add(name, x.S())
		}
	}
}

// quote is Kamal's escape_shell_value (kept here to avoid an import cycle
// with internal/spec, which renders it identically).
func quote(s string) string { return spec.EscapeShellValue(s) }

func (c *Config) proxyDeploy(service string, proxy *yaml11.Value, role string) *specv1.ProxyDeploy {
	var f flagList
	if hs := proxyHosts(proxy); len(hs) > 0 {
		f.add("host", hs)
	}
	if proxy.Get("ssl").Truthy() {
		f.add("tls", true)
	}
	if customSSL(proxy) && role != "" {
		dir := path.Join("/home/kamal-proxy/.apps-config", c.ServiceAndDestination(), "tls", role)
		f.add("tls-certificate-path", dir+"/cert.pem")
		f.add("tls-private-key-path", dir+"/key.pem")
	}
	f.add("deploy-timeout", fmt.Sprintf("%ds", c.DeployTimeout))
	f.add("drain-timeout", fmt.Sprintf("%ds", c.DrainTimeout))
	hc := proxy.Get("healthcheck")
	if s := seconds(hc.Get("interval")); s != "" {
		f.add("health-check-interval", s)
	}
	if s := seconds(hc.Get("timeout")); s != "" {
		f.add("health-check-timeout", s)
	}
	f.add("health-check-path", hc.Get("path"))
	if s := seconds(proxy.Get("response_timeout")); s != "" {
		f.add("target-timeout", s)
	}
	buf := proxy.Get("buffering")
	if buf == nil || buf.Kind != yaml11.KindMap {
		f.add("buffer-requests", true)
		f.add("buffer-responses", true)
	} else {
		for _, kv := range [][2]string{{"buffer-requests", "requests"}, {"buffer-responses", "responses"}} {
			if buf.Has(kv[1]) {
				f.add(kv[0], buf.Get(kv[1]))
			} else {
				f.add(kv[0], true)
			}
		}
	}
	f.add("buffer-memory", buf.Get("memory"))
	f.add("max-request-body", buf.Get("max_request_body"))
	f.add("max-response-body", buf.Get("max_response_body"))
	if pp := pathPrefixes(proxy); len(pp) > 0 {
		f.add("path-prefix", pp)
	}
	f.add("strip-path-prefix", proxy.Get("strip_path_prefix"))
	f.add("forward-headers", proxy.Get("forward_headers"))
	f.add("tls-redirect", proxy.Get("ssl_redirect"))
	if rh := proxy.Get("logging").Get("request_headers"); rh != nil && !rh.IsNull() {
		f.add("log-request-header", rh)
	} else {
		f.add("log-request-header", []string{"Cache-Control", "Last-Modified", "User-Agent"})
	}
	f.add("log-response-header", proxy.Get("logging").Get("response_headers"))
	if c.ErrorPagesPath != "" {
		f.add("error-pages", path.Join("/home/kamal-proxy/.apps-config", c.ServiceAndDestination(), "error_pages", c.Version))
	}
	port := proxy.Get("app_port").IntOr(80)
	return &specv1.ProxyDeploy{
		Service:       service,
		AppPort:       uint32(port),
		Flags:         f,
		DeployTimeout: uint32(c.DeployTimeout),
		DrainTimeout:  uint32(c.DrainTimeout),
	}
}

// ProxyDeploy is the kamal-proxy deploy request for role, or nil when the
// role does not run behind the proxy.
func (c *Config) ProxyDeploy(role string) *specv1.ProxyDeploy {
	r := c.Role(role)
	if r == nil || !r.RunningProxy {
		return nil
	}
	pd := c.proxyDeploy(c.ContainerPrefix(r.Name), r.Proxy, r.Name)
	if customSSL(r.Proxy) && c.opts.Secrets != nil {
		ssl := r.Proxy.Get("ssl")
		dir := path.Join(c.ServiceAndDestination(), "tls", r.Name)
		if cert, err := c.opts.Secrets.Secret(ssl.Get("certificate_pem").S()); err == nil {
			pd.Files = append(pd.Files, &specv1.File{Path: dir + "/cert.pem", Content: []byte(cert), Mode: 0o644})
		}
		if key, err := c.opts.Secrets.Secret(ssl.Get("private_key_pem").S()); err == nil {
			pd.Files = append(pd.Files, &specv1.File{Path: dir + "/key.pem", Content: []byte(key), Mode: 0o644})
		}
	}
	return pd
}

// AccessoryProxyDeploy is the kamal-proxy deploy request for an accessory
// that sets proxy:, or nil.
func (c *Config) AccessoryProxyDeploy(name string) *specv1.ProxyDeploy {
	a := c.Accessory(name)
	if a == nil || a.Proxy == nil {
		return nil
	}
	return c.proxyDeploy(a.ServiceName, a.Proxy, "")
}

// ProxyBoot is how kamal-proxy is booted on host.
func (c *Config) ProxyBoot(host string) *specv1.ProxyBoot {
	vols := []string{"kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy", "$PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config"}
	run := c.proxyRun(host)
	if run == nil {
		return &specv1.ProxyBoot{Legacy: true, Container: &specv1.Container{
			Kind: specv1.ContainerKind_CONTAINER_KIND_PROXY, Name: "kamal-proxy", Network: "kamal", Restart: "unless-stopped",
			Image: "basecamp/kamal-proxy:v0.9.2", Volumes: vols, Publish: []string{"80:80", "443:443"},
			Logging: &specv1.Logging{Options: []*specv1.KeyValue{{Key: "max-size", Value: "10m", Raw: true}}},
		}}
	}
	ct := &specv1.Container{Kind: specv1.ContainerKind_CONTAINER_KIND_PROXY, Name: "kamal-proxy", Network: "kamal", Restart: "unless-stopped", Volumes: vols, Host: host}
	publish := !run.Has("publish") || run.Get("publish").Truthy()
	if publish {
		httpPort, httpsPort := "80", "443"
		if run.Has("http_port") {
			httpPort = run.Get("http_port").S()
		}
		if run.Has("https_port") {
			httpsPort = run.Get("https_port").S()
		}
		ips := []string{""}
		if b := run.Get("bind_ips"); b != nil && b.Kind == yaml11.KindSeq {
			ips = b.Strings()
		}
		for _, ip := range ips {
			pre := ""
			if ip != "" {
				if strings.Contains(ip, ":") && !strings.HasPrefix(ip, "[") {
					ip = "[" + ip + "]"
				}
				pre = ip + ":"
			}
			ct.Publish = append(ct.Publish, pre+httpPort+":80", pre+httpsPort+":443")
		}
	}
	logSize := "10m"
	if run.Has("log_max_size") {
		logSize = run.Get("log_max_size").S()
	}
	ct.Logging = &specv1.Logging{}
	if strings.TrimSpace(logSize) != "" {
		ct.Logging.Options = []*specv1.KeyValue{{Key: "max-size", Value: logSize, Raw: true}}
	}
	if mp := run.Get("metrics_port"); mp.Present() {
		ct.Expose = append(ct.Expose, mp.S())
	}
	ct.Options = optionPairs(run.Get("options"))
	repo := "basecamp/kamal-proxy"
	if r := run.Get("repository"); r != nil && !r.IsNull() {
		repo = r.S()
	}
	if r := run.Get("registry"); r != nil && r.Kind == yaml11.KindString {
		repo = r.Str + "/" + repo
	}
	version := "v0.9.2"
	if v := run.Get("version"); v != nil && !v.IsNull() {
		version = v.S()
	}
	ct.Image = repo + ":" + version
	cmd := []string{"kamal-proxy", "run"}
	if d := run.Get("debug"); d.Truthy() {
		if d.IsTrue() {
			cmd = append(cmd, "--debug")
		} else {
			cmd = append(cmd, "--debug", quote(d.S()))
		}
	}
	if mp := run.Get("metrics_port"); mp != nil && !mp.IsNull() {
		cmd = append(cmd, "--metrics-port", quote(mp.S()))
	}
	ct.Cmd = strings.Join(cmd, " ")
	return &specv1.ProxyBoot{Container: ct}
}
