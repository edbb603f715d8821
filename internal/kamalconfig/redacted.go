package kamalconfig

import (
	"strings"

	"github.com/kctl-dev/kctl/internal/spec"
)

// Redacted is the printable effective configuration: Kamal's `kamal config`
// plus per-role detail, with no secret values (secret names only).
func (cfg *Config) Redacted() map[string]any {
	roles := []map[string]any{}
	for _, r := range cfg.Roles {
		ro := map[string]any{
			"name":          r.Name,
			"hosts":         r.Hosts,
			"running_proxy": r.RunningProxy,
			"secret_env":    cfg.EnvSecretKeys(r),
		}
		if len(r.Hosts) > 0 {
			ct := cfg.AppContainer(r.Name, r.Hosts[0])
			ct.SecretEnv = nil
			ro["docker_run"] = strings.Join(spec.DockerRunArgs(ct), " ")
			if pd := cfg.ProxyDeploy(r.Name); pd != nil {
				pd.Files = nil
				ro["proxy_deploy"] = strings.Join(spec.ProxyDeployArgs(pd, "<container>"), " ")
			}
			ro["stop"] = strings.Join(spec.StopArgs(cfg.ContainerName(r.Name, "<old>"), cfg.StopPolicy(r.Name)), " ")
		}
		roles = append(roles, ro)
	}
	accs := map[string]any{}
	for _, a := range cfg.Accessories {
		ct := cfg.AccessoryContainer(a.Name, "")
		ct.SecretEnv = nil
		accs[a.Name] = map[string]any{"service": a.ServiceName, "image": a.Image, "hosts": a.Hosts, "docker_run": strings.Join(spec.DockerRunArgs(ct), " ")}
	}
	reg := map[string]any{"server": cfg.Registry.Server}
	if cfg.Registry.UsernameSecret != "" {
		reg["username"] = "[secret " + cfg.Registry.UsernameSecret + "]"
	} else {
		reg["username"] = cfg.Registry.Username
	}
	if cfg.Registry.PasswordSecret != "" {
		reg["password"] = "[secret " + cfg.Registry.PasswordSecret + "]"
	} else if cfg.Registry.Password != "" {
		reg["password"] = "[REDACTED]"
	}
	aliases := map[string]string{}
	for k, v := range cfg.Aliases {
		aliases[k] = v
	}
	return map[string]any{
		"service":           cfg.Service,
		"destination":       cfg.Destination,
		"version":           cfg.Version,
		"repository":        cfg.Repository(),
		"absolute_image":    cfg.Image(),
		"primary_role":      cfg.PrimaryRoleName,
		"hosts":             cfg.AllHosts(),
		"proxy_hosts":       cfg.ProxyHosts(),
		"roles":             roles,
		"accessories":       accs,
		"registry":          reg,
		"retain_containers": cfg.RetainContainers,
		"readiness_delay":   cfg.ReadinessDelay,
		"deploy_timeout":    cfg.DeployTimeout,
		"drain_timeout":     cfg.DrainTimeout,
		"hooks_path":        cfg.HooksPath,
		"boot":              map[string]any{"limit": cfg.Boot.Limit, "wait": cfg.Boot.Wait, "parallel_roles": cfg.Boot.ParallelRoles},
		"aliases":           aliases,
	}
}
