package docker

import (
	"errors"
	"fmt"
	"math/big"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"
)

// ErrUnknownOption is returned for a docker-run flag the agent cannot
// translate; the error names the flag.
var ErrUnknownOption = errors.New("docker: unknown docker run option")

// ErrBadOption is returned for a known flag with a value Docker would refuse.
var ErrBadOption = errors.New("docker: invalid docker run option")

// Flag is one docker-run flag and its value, as on a `docker run` line
// (without the leading dashes). Bare boolean flags have Value "true".
type Flag struct {
	Name  string
	Value string
}

// Spec is a container as the Engine API takes it.
type Spec struct {
	pendingNet
	Name string
	// EnvFile is the --env-file path of a rendered docker run line; the
	// agent passes secret values through the API instead.
	EnvFile string
	Config  *container.Config
	Host    *container.HostConfig
	Network *network.NetworkingConfig
}

func newSpec() *Spec {
	return &Spec{
		Config:  &container.Config{Labels: map[string]string{}, ExposedPorts: nat.PortSet{}},
		Host:    &container.HostConfig{PortBindings: nat.PortMap{}},
		Network: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}},
	}
}

type flagDef struct {
	boolean bool
	apply   func(s *Spec, v string) error
}

// boolVal parses a boolean flag value; Kamal renders `true` as a bare flag.
func boolVal(v string) (bool, error) {
	if v == "" {
		return true, nil
	}
	return strconv.ParseBool(v)
}

func setBool(dst func(s *Spec) *bool) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		b, err := boolVal(v)
		if err != nil {
			return err
		}
		*dst(s) = b
		return nil
	}
}

func setString(dst func(s *Spec) *string) func(*Spec, string) error {
	return func(s *Spec, v string) error { *dst(s) = v; return nil }
}

func appendString(dst func(s *Spec) *[]string) func(*Spec, string) error {
	return func(s *Spec, v string) error { p := dst(s); *p = append(*p, v); return nil }
}

func setBytes(dst func(s *Spec) *int64) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		if v == "-1" {
			*dst(s) = -1
			return nil
		}
		n, err := units.RAMInBytes(v)
		if err != nil {
			return err
		}
		*dst(s) = n
		return nil
	}
}

func setInt(dst func(s *Spec) *int64) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return err
		}
		*dst(s) = n
		return nil
	}
}

func setDuration(dst func(s *Spec) *time.Duration) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*dst(s) = d
		return nil
	}
}

func health(s *Spec) *container.HealthConfig {
	if s.Config.Healthcheck == nil {
		s.Config.Healthcheck = &container.HealthConfig{}
	}
	return s.Config.Healthcheck
}

func logConfig(s *Spec) *container.LogConfig {
	if s.Host.LogConfig.Config == nil {
		s.Host.LogConfig.Config = map[string]string{}
	}
	return &s.Host.LogConfig
}

// flagAliases maps docker run's short and legacy flag names to flagTable's.
var flagAliases = map[string]string{
	"e": "env", "v": "volume", "p": "publish", "l": "label", "u": "user", "w": "workdir",
	"h": "hostname", "m": "memory", "c": "cpu-shares", "d": "detach", "t": "tty", "i": "interactive",
	"net": "network", "net-alias": "network-alias", "P": "publish-all",
}

// flagTable is every docker-run flag the agent translates. Aliases map to
// the same definition. Kamal's own flags (name, network, env, label, volume,
// log-opt, publish, …) go through the same table, so a rendered `docker run`
// argument list and a spec translate to the same Engine API structures.
var flagTable = map[string]flagDef{
	// Kamal's own docker run flags.
	"detach":  {boolean: true, apply: func(*Spec, string) error { return nil }},
	"name":    {apply: func(s *Spec, v string) error { s.Name = v; return nil }},
	"restart": {apply: applyRestart},
	"network": {apply: func(s *Spec, v string) error {
		s.Host.NetworkMode = container.NetworkMode(v)
		if _, ok := s.Network.EndpointsConfig[v]; !ok && v != "" {
			s.Network.EndpointsConfig = map[string]*network.EndpointSettings{v: {}}
		}
		return nil
	}},
	"env-file": {apply: func(s *Spec, v string) error { s.EnvFile = v; return nil }},
	"hostname": {apply: setString(func(s *Spec) *string { return &s.Config.Hostname })},
	"env": {apply: func(s *Spec, v string) error {
		s.Config.Env = append(s.Config.Env, v)
		return nil
	}},
	"label": {apply: func(s *Spec, v string) error {
		k, val, _ := strings.Cut(v, "=")
		s.Config.Labels[k] = val
		return nil
	}},
	"volume":     {apply: appendString(func(s *Spec) *[]string { return &s.Host.Binds })},
	"log-driver": {apply: func(s *Spec, v string) error { logConfig(s).Type = v; return nil }},
	"log-opt": {apply: func(s *Spec, v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("log-opt %q is not key=value", v)
		}
		logConfig(s).Config[k] = val
		return nil
	}},
	"publish": {apply: applyPublish},
	"expose": {apply: func(s *Spec, v string) error {
		proto := "tcp"
		if p, pr, ok := strings.Cut(v, "/"); ok {
			v, proto = p, pr
		}
		start, end, err := nat.ParsePortRange(v)
		if err != nil {
			return err
		}
		for p := start; p <= end; p++ {
			port, err := nat.NewPort(proto, strconv.FormatUint(p, 10))
			if err != nil {
				return err
			}
			s.Config.ExposedPorts[port] = struct{}{}
		}
		return nil
	}},
	"publish-all": {boolean: true, apply: setBool(func(s *Spec) *bool { return &s.Host.PublishAllPorts })},

	// Resources.
	"memory":             {apply: setBytes(func(s *Spec) *int64 { return &s.Host.Memory })},
	"memory-swap":        {apply: setBytes(func(s *Spec) *int64 { return &s.Host.MemorySwap })},
	"memory-reservation": {apply: setBytes(func(s *Spec) *int64 { return &s.Host.MemoryReservation })},
	"memory-swappiness": {apply: func(s *Spec, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		s.Host.MemorySwappiness = &n
		return err
	}},
	"kernel-memory": {apply: setBytes(func(s *Spec) *int64 { return &s.Host.KernelMemory })},
	"shm-size":      {apply: setBytes(func(s *Spec) *int64 { return &s.Host.ShmSize })},
	"cpus":          {apply: applyCPUs},
	"cpu-shares":    {apply: setInt(func(s *Spec) *int64 { return &s.Host.CPUShares })},
	"cpu-period":    {apply: setInt(func(s *Spec) *int64 { return &s.Host.CPUPeriod })},
	"cpu-quota":     {apply: setInt(func(s *Spec) *int64 { return &s.Host.CPUQuota })},
	"cpuset-cpus":   {apply: setString(func(s *Spec) *string { return &s.Host.CpusetCpus })},
	"cpuset-mems":   {apply: setString(func(s *Spec) *string { return &s.Host.CpusetMems })},
	"blkio-weight": {apply: func(s *Spec, v string) error {
		n, err := strconv.ParseUint(v, 10, 16)
		s.Host.BlkioWeight = uint16(n)
		return err
	}},
	"pids-limit": {apply: func(s *Spec, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		s.Host.PidsLimit = &n
		return err
	}},
	"oom-kill-disable": {boolean: true, apply: func(s *Spec, v string) error { b, err := boolVal(v); s.Host.OomKillDisable = &b; return err }},
	"oom-score-adj":    {apply: func(s *Spec, v string) error { n, err := strconv.Atoi(v); s.Host.OomScoreAdj = n; return err }},
	"ulimit": {apply: func(s *Spec, v string) error {
		u, err := units.ParseUlimit(v)
		if err != nil {
			return err
		}
		s.Host.Ulimits = append(s.Host.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
		return nil
	}},
	"cgroup-parent": {apply: setString(func(s *Spec) *string { return &s.Host.CgroupParent })},
	"device":        {apply: applyDevice},
	"device-cgroup-rule": {apply: func(s *Spec, v string) error {
		s.Host.DeviceCgroupRules = append(s.Host.DeviceCgroupRules, v)
		return nil
	}},
	"gpus": {apply: applyGPUs},

	// Security and namespaces.
	"cap-add":      {apply: func(s *Spec, v string) error { s.Host.CapAdd = append(s.Host.CapAdd, v); return nil }},
	"cap-drop":     {apply: func(s *Spec, v string) error { s.Host.CapDrop = append(s.Host.CapDrop, v); return nil }},
	"privileged":   {boolean: true, apply: setBool(func(s *Spec) *bool { return &s.Host.Privileged })},
	"read-only":    {boolean: true, apply: setBool(func(s *Spec) *bool { return &s.Host.ReadonlyRootfs })},
	"security-opt": {apply: appendString(func(s *Spec) *[]string { return &s.Host.SecurityOpt })},
	"group-add":    {apply: appendString(func(s *Spec) *[]string { return &s.Host.GroupAdd })},
	"user":         {apply: setString(func(s *Spec) *string { return &s.Config.User })},
	"userns":       {apply: func(s *Spec, v string) error { s.Host.UsernsMode = container.UsernsMode(v); return nil }},
	"ipc":          {apply: func(s *Spec, v string) error { s.Host.IpcMode = container.IpcMode(v); return nil }},
	"pid":          {apply: func(s *Spec, v string) error { s.Host.PidMode = container.PidMode(v); return nil }},
	"uts":          {apply: func(s *Spec, v string) error { s.Host.UTSMode = container.UTSMode(v); return nil }},
	"cgroupns":     {apply: func(s *Spec, v string) error { s.Host.CgroupnsMode = container.CgroupnsMode(v); return nil }},
	"sysctl": {apply: func(s *Spec, v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("sysctl %q is not key=value", v)
		}
		if s.Host.Sysctls == nil {
			s.Host.Sysctls = map[string]string{}
		}
		s.Host.Sysctls[k] = val
		return nil
	}},
	"runtime":   {apply: setString(func(s *Spec) *string { return &s.Host.Runtime })},
	"isolation": {apply: func(s *Spec, v string) error { s.Host.Isolation = container.Isolation(v); return nil }},
	"init":      {boolean: true, apply: func(s *Spec, v string) error { b, err := boolVal(v); s.Host.Init = &b; return err }},
	"storage-opt": {apply: func(s *Spec, v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("storage-opt %q is not key=value", v)
		}
		if s.Host.StorageOpt == nil {
			s.Host.StorageOpt = map[string]string{}
		}
		s.Host.StorageOpt[k] = val
		return nil
	}},

	// Process.
	"workdir":     {apply: setString(func(s *Spec) *string { return &s.Config.WorkingDir })},
	"entrypoint":  {apply: func(s *Spec, v string) error { s.Config.Entrypoint = []string{v}; return nil }},
	"stop-signal": {apply: setString(func(s *Spec) *string { return &s.Config.StopSignal })},
	"stop-timeout": {apply: func(s *Spec, v string) error {
		n, err := strconv.Atoi(v)
		s.Config.StopTimeout = &n
		return err
	}},
	"tty":         {boolean: true, apply: setBool(func(s *Spec) *bool { return &s.Config.Tty })},
	"interactive": {boolean: true, apply: setBool(func(s *Spec) *bool { return &s.Config.OpenStdin })},

	// Filesystems.
	"mount": {apply: applyMount},
	"tmpfs": {apply: func(s *Spec, v string) error {
		if s.Host.Tmpfs == nil {
			s.Host.Tmpfs = map[string]string{}
		}
		path, opts, _ := strings.Cut(v, ":")
		s.Host.Tmpfs[path] = opts
		return nil
	}},
	"volumes-from":  {apply: appendString(func(s *Spec) *[]string { return &s.Host.VolumesFrom })},
	"volume-driver": {apply: setString(func(s *Spec) *string { return &s.Host.VolumeDriver })},

	// Networking.
	"add-host":   {apply: appendString(func(s *Spec) *[]string { return &s.Host.ExtraHosts })},
	"dns":        {apply: appendString(func(s *Spec) *[]string { return &s.Host.DNS })},
	"dns-search": {apply: appendString(func(s *Spec) *[]string { return &s.Host.DNSSearch })},
	"dns-option": {apply: appendString(func(s *Spec) *[]string { return &s.Host.DNSOptions })},
	"dns-opt":    {apply: appendString(func(s *Spec) *[]string { return &s.Host.DNSOptions })},
	"network-alias": {apply: func(s *Spec, v string) error {
		s.pendingAliases = append(s.pendingAliases, v)
		return nil
	}},
	"mac-address": {apply: func(s *Spec, v string) error { s.pendingMAC = v; return nil }},
	"ip":          {apply: func(s *Spec, v string) error { s.pendingIP = v; return nil }},
	"ip6":         {apply: func(s *Spec, v string) error { s.pendingIP6 = v; return nil }},
	"link":        {apply: appendString(func(s *Spec) *[]string { return &s.Host.Links })},

	// Health.
	"health-cmd":            {apply: func(s *Spec, v string) error { health(s).Test = []string{"CMD-SHELL", v}; return nil }},
	"health-interval":       {apply: setDuration(func(s *Spec) *time.Duration { return &health(s).Interval })},
	"health-timeout":        {apply: setDuration(func(s *Spec) *time.Duration { return &health(s).Timeout })},
	"health-start-period":   {apply: setDuration(func(s *Spec) *time.Duration { return &health(s).StartPeriod })},
	"health-start-interval": {apply: setDuration(func(s *Spec) *time.Duration { return &health(s).StartInterval })},
	"health-retries":        {apply: func(s *Spec, v string) error { n, err := strconv.Atoi(v); health(s).Retries = n; return err }},
	"no-healthcheck": {boolean: true, apply: func(s *Spec, v string) error {
		b, err := boolVal(v)
		if b {
			health(s).Test = []string{"NONE"}
		}
		return err
	}},
}

// pending network settings are applied to the endpoint after all flags.
type pendingNet struct {
	pendingAliases                    []string
	pendingMAC, pendingIP, pendingIP6 string
}

// KnownOption reports whether the agent translates the docker-run flag.
func KnownOption(name string) bool {
	if a, ok := flagAliases[name]; ok {
		name = a
	}
	_, ok := flagTable[name]
	return ok
}

// IsBooleanOption reports whether the flag takes no value on a docker run line.
func IsBooleanOption(name string) bool {
	if a, ok := flagAliases[name]; ok {
		name = a
	}
	return flagTable[name].boolean
}

// Apply translates flags, in order, onto a fresh Spec. Unknown flags fail
// before anything is applied, with an error naming every unknown flag.
func Apply(flags []Flag) (*Spec, error) {
	var unknown []string
	for _, f := range flags {
		if !KnownOption(f.Name) {
			unknown = append(unknown, "--"+f.Name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownOption, strings.Join(unknown, ", "))
	}
	s := newSpec()
	for _, f := range flags {
		name := f.Name
		if a, ok := flagAliases[name]; ok {
			name = a
		}
		if err := flagTable[name].apply(s, f.Value); err != nil {
			return nil, fmt.Errorf("%w: --%s %q: %v", ErrBadOption, f.Name, f.Value, err)
		}
	}
	s.finishNetwork()
	return s, nil
}

func (s *Spec) finishNetwork() {
	if len(s.pendingAliases) == 0 && s.pendingIP == "" && s.pendingIP6 == "" && s.pendingMAC == "" {
		return
	}
	mode := string(s.Host.NetworkMode)
	ep := s.Network.EndpointsConfig[mode]
	if ep == nil {
		ep = &network.EndpointSettings{}
		s.Network.EndpointsConfig[mode] = ep
	}
	ep.Aliases = append(ep.Aliases, s.pendingAliases...)
	if s.pendingIP != "" || s.pendingIP6 != "" {
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: s.pendingIP, IPv6Address: s.pendingIP6}
	}
	ep.MacAddress = s.pendingMAC
}

func applyRestart(s *Spec, v string) error {
	name, count, _ := strings.Cut(v, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch p.Name {
	case "no", "always", "unless-stopped", "on-failure":
	default:
		return fmt.Errorf("invalid restart policy %q", v)
	}
	if count != "" {
		n, err := strconv.Atoi(count)
		if err != nil {
			return err
		}
		p.MaximumRetryCount = n
	}
	s.Host.RestartPolicy = p
	return nil
}

func applyPublish(s *Spec, v string) error {
	exposed, bindings, err := nat.ParsePortSpecs([]string{v})
	if err != nil {
		return err
	}
	for p := range exposed {
		s.Config.ExposedPorts[p] = struct{}{}
	}
	for p, b := range bindings {
		s.Host.PortBindings[p] = append(s.Host.PortBindings[p], b...)
	}
	return nil
}

func applyCPUs(s *Spec, v string) error {
	r, ok := new(big.Rat).SetString(v)
	if !ok {
		return fmt.Errorf("failed to parse %q as a rational number", v)
	}
	n := r.Mul(r, big.NewRat(1e9, 1))
	if !n.IsInt() {
		return fmt.Errorf("value is too precise")
	}
	s.Host.NanoCPUs = n.Num().Int64()
	return nil
}

func applyDevice(s *Spec, v string) error {
	parts := strings.Split(v, ":")
	d := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
	case 2:
		if isPerm(parts[1]) {
			d.CgroupPermissions = parts[1]
		} else {
			d.PathInContainer = parts[1]
		}
	case 3:
		if !isPerm(parts[2]) {
			return fmt.Errorf("invalid device mode %q", parts[2])
		}
		d.PathInContainer, d.CgroupPermissions = parts[1], parts[2]
	default:
		return fmt.Errorf("invalid device specification %q", v)
	}
	s.Host.Devices = append(s.Host.Devices, d)
	return nil
}

func isPerm(p string) bool {
	if p == "" {
		return false
	}
	for _, c := range p {
		if c != 'r' && c != 'w' && c != 'm' {
			return false
		}
	}
	return true
}

// applyGPUs follows docker's --gpus syntax: all, N, or a csv of
// count=,device=,driver=,capabilities=.
func applyGPUs(s *Spec, v string) error {
	req := container.DeviceRequest{Capabilities: [][]string{{"gpu"}}}
	switch {
	case v == "all":
		req.Count = -1
	default:
		if n, err := strconv.Atoi(v); err == nil {
			req.Count = n
			break
		}
		for _, f := range strings.Split(strings.Trim(v, `"`), ",") {
			k, val, _ := strings.Cut(f, "=")
			switch k {
			case "count":
				if val == "all" {
					req.Count = -1
				} else {
					n, err := strconv.Atoi(val)
					if err != nil {
						return err
					}
					req.Count = n
				}
			case "device":
				req.DeviceIDs = append(req.DeviceIDs, strings.Split(val, ",")...)
			case "driver":
				req.Driver = val
			case "capabilities":
				req.Capabilities = [][]string{append([]string{"gpu"}, strings.Split(val, ",")...)}
			default:
				return fmt.Errorf("unexpected key %q in --gpus", k)
			}
		}
	}
	s.Host.DeviceRequests = append(s.Host.DeviceRequests, req)
	return nil
}

// applyMount follows docker's --mount csv syntax.
func applyMount(s *Spec, v string) error {
	m := mount.Mount{Type: mount.TypeVolume}
	for _, f := range strings.Split(v, ",") {
		k, val, hasVal := strings.Cut(f, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = mount.Type(val)
		case "source", "src":
			m.Source = val
		case "target", "destination", "dst":
			m.Target = val
		case "readonly", "ro":
			b := true
			if hasVal {
				var err error
				if b, err = strconv.ParseBool(val); err != nil {
					return err
				}
			}
			m.ReadOnly = b
		case "consistency":
			m.Consistency = mount.Consistency(val)
		case "bind-propagation":
			if m.BindOptions == nil {
				m.BindOptions = &mount.BindOptions{}
			}
			m.BindOptions.Propagation = mount.Propagation(val)
		case "volume-nocopy":
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			m.VolumeOptions.NoCopy = !hasVal || val == "true" || val == "1"
		case "volume-driver":
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			m.VolumeOptions.DriverConfig = &mount.Driver{Name: val}
		case "volume-opt":
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			if m.VolumeOptions.DriverConfig == nil {
				m.VolumeOptions.DriverConfig = &mount.Driver{}
			}
			if m.VolumeOptions.DriverConfig.Options == nil {
				m.VolumeOptions.DriverConfig.Options = map[string]string{}
			}
			ok, ov, _ := strings.Cut(val, "=")
			m.VolumeOptions.DriverConfig.Options[ok] = ov
		case "tmpfs-size":
			n, err := units.RAMInBytes(val)
			if err != nil {
				return err
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return err
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.Mode = fileMode(n)
		default:
			return fmt.Errorf("unexpected key %q in --mount", k)
		}
	}
	if m.Target == "" {
		return errors.New("target is required in --mount")
	}
	s.Host.Mounts = append(s.Host.Mounts, m)
	return nil
}

// SupportedOptions lists every translated flag name, sorted.
func SupportedOptions() []string {
	out := make([]string, 0, len(flagTable))
	for k := range flagTable {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fileMode(n uint64) os.FileMode { return os.FileMode(n) }
