package kamalconfig

import (
	"errors"

	"github.com/kctl-dev/kctl/internal/spec"
)

// Explain derives, for opts.Version, the structure of the corpus's
// *.expected.json files: what Kamal would run for each role, accessory and
// proxy host. Hostnames are shown as HOST and proxy targets as TARGET; the
// version of the old container in "stop" is v0. On refusal it returns
// {"error": "<Class>: <message>"} and the error.
func Explain(opts Options) (map[string]any, error) {
	opts.HostnameSuffix = nil
	cfg, err := Load(opts)
	if err != nil {
		return map[string]any{"error": kamalMessage(err)}, err
	}
	return cfg.Explain(), nil
}

func kamalMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.KamalMessage()
	}
	return err.Error()
}

// Explain is the expected.json structure for a loaded configuration.
func (c *Config) Explain() map[string]any {
	out := map[string]any{
		"service":      c.Service,
		"image":        c.Image(),
		"primary_role": c.PrimaryRoleName,
	}
	roles := map[string]any{}
	for _, r := range c.Roles {
		ro := map[string]any{
			"hosts":         nonNil(r.Hosts),
			"running_proxy": r.RunningProxy,
			"cmd":           nil,
		}
		if r.Cmd != nil && !r.Cmd.IsNull() {
			ro["cmd"] = r.Cmd.S()
		}
		if len(r.Hosts) > 0 {
			host := r.Hosts[0]
			ct := c.AppContainer(r.Name, host)
			ct.Hostname = "HOST"
			ro["docker_run"] = spec.DockerRunArgs(ct)
			ro["env_secret_keys"] = c.EnvSecretKeys(r)
			if pd := c.ProxyDeploy(r.Name); pd != nil {
				ro["proxy_deploy"] = spec.ProxyDeployArgs(pd, "TARGET")
			}
			ro["stop"] = spec.StopArgs(c.ContainerName(r.Name, "v0"), c.StopPolicy(r.Name))
		}
		roles[r.Name] = ro
	}
	out["roles"] = roles
	accs := map[string]any{}
	for _, a := range c.Accessories {
		accs[a.Name] = map[string]any{
			"service":    a.ServiceName,
			"hosts":      nonNil(a.Hosts),
			"docker_run": spec.DockerRunArgs(c.AccessoryContainer(a.Name, "")),
		}
	}
	out["accessories"] = accs
	boots := map[string]any{}
	for _, h := range c.ProxyHosts() {
		boots[h] = spec.ProxyBootArgs(c.ProxyBoot(h))
	}
	out["proxy_boot"] = boots
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
