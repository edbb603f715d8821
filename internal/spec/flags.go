package spec

import (
	"strings"

	"google.golang.org/protobuf/proto"

	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

// Form is how a flag is written on Kamal's command line.
type Form int

const (
	// Separate is `--name ARG`.
	Separate Form = iota
	// Bare is `--name` (a boolean flag, or --env/--label KEY).
	Bare
	// Equals is `--name=ARG`.
	Equals
	// Joined is `--name ARG` as one word; consecutive Joined flags share
	// that word (Kamal's proxy publish string).
	Joined
)

// Flag is one docker-run flag a container spec stands for, in both its
// forms: Value is what the Docker engine receives (the agent translates it)
// and Arg is the shell word Kamal's command line shows (DockerRunArgs).
type Flag struct {
	// Name is the flag without its dashes.
	Name string
	// Value is the unquoted value; "true" for a Bare boolean flag.
	Value string
	// Arg is the value as rendered, shell quoting included ("" when Bare).
	Arg  string
	Form Form
}

// RunFlags returns the docker-run flags of c in the order Kamal renders
// them for c's kind (Kamal 2.12's app, accessory and proxy commands). Every
// field of the spec is included wherever Kamal's own derivation could not
// set it (a hand-built app spec may publish ports), so nothing a spec says
// is lost. Restart and network are included only when set: DockerRunArgs
// fills Kamal's defaults, the agent leaves them to Docker. Secret env is
// not included: Kamal passes it through the env file.
func RunFlags(c *specv1.Container) []Flag {
	var sections []func(*specv1.Container) []Flag
	switch c.GetKind() {
	case specv1.ContainerKind_CONTAINER_KIND_ACCESSORY:
		sections = accessoryLayout
	case specv1.ContainerKind_CONTAINER_KIND_PROXY:
		sections = proxyLayout
	default:
		sections = appLayout
	}
	var out []Flag
	for _, s := range sections {
		out = append(out, s(c)...)
	}
	return out
}

var (
	appLayout = []func(*specv1.Container) []Flag{
		detachFlag, restartFlag, nameFlag, networkFlag, hostnameFlag, envFlags, envFileFlag,
		loggingFlags, volumeFlags, labelFlags, publishFlags, exposeFlags, optionFlags,
	}
	accessoryLayout = []func(*specv1.Container) []Flag{
		nameFlag, detachFlag, restartFlag, networkFlag, hostnameFlag, loggingFlags, publishFlags,
		envFlags, envFileFlag, volumeFlags, labelFlags, exposeFlags, optionFlags,
	}
	proxyLayout = []func(*specv1.Container) []Flag{
		nameFlag, networkFlag, detachFlag, restartFlag, hostnameFlag, envFlags, envFileFlag,
		volumeFlags, joinedPublishFlags, loggingFlags, equalsExposeFlags, labelFlags, optionFlags,
	}
)

// plain is a flag whose value needs no quoting.
func plain(name, v string) Flag { return Flag{Name: name, Value: v, Arg: v} }

func plainIf(name, v string) []Flag {
	if v == "" {
		return nil
	}
	return []Flag{plain(name, v)}
}

func detachFlag(*specv1.Container) []Flag {
	return []Flag{{Name: "detach", Value: "true", Form: Bare}}
}
func restartFlag(c *specv1.Container) []Flag  { return plainIf("restart", c.GetRestart()) }
func nameFlag(c *specv1.Container) []Flag     { return []Flag{plain("name", c.GetName())} }
func networkFlag(c *specv1.Container) []Flag  { return plainIf("network", c.GetNetwork()) }
func hostnameFlag(c *specv1.Container) []Flag { return plainIf("hostname", c.GetHostname()) }
func envFileFlag(c *specv1.Container) []Flag  { return plainIf("env-file", c.GetEnvFile()) }
func envFlags(c *specv1.Container) []Flag     { return argumentize("env", c.GetEnv()) }
func labelFlags(c *specv1.Container) []Flag   { return argumentize("label", c.GetLabels()) }

func volumeFlags(c *specv1.Container) []Flag  { return repeated("volume", c.GetVolumes(), Separate) }
func publishFlags(c *specv1.Container) []Flag { return repeated("publish", c.GetPublish(), Separate) }
func exposeFlags(c *specv1.Container) []Flag  { return repeated("expose", c.GetExpose(), Separate) }
func joinedPublishFlags(c *specv1.Container) []Flag {
	return repeated("publish", c.GetPublish(), Joined)
}
func equalsExposeFlags(c *specv1.Container) []Flag {
	return repeated("expose", c.GetExpose(), Equals)
}

func repeated(name string, vs []string, form Form) []Flag {
	var out []Flag
	for _, v := range vs {
		f := plain(name, v)
		f.Form = form
		out = append(out, f)
	}
	return out
}

// argumentize is Kamal::Utils.argumentize for ordered pairs: KEY="value",
// KEY=value for raw values, KEY alone for bare ones (which the engine
// receives as KEY=).
func argumentize(name string, kvs []*specv1.KeyValue) []Flag {
	var out []Flag
	for _, kv := range kvs {
		f := Flag{Name: name, Value: kv.GetKey() + "=" + kv.GetValue()}
		switch {
		case kv.GetBare():
			f.Arg = kv.GetKey()
		case kv.GetRaw():
			f.Arg = f.Value
		default:
			f.Arg = kv.GetKey() + "=" + EscapeShellValue(kv.GetValue())
		}
		out = append(out, f)
	}
	return out
}

func loggingFlags(c *specv1.Container) []Flag {
	l := c.GetLogging()
	var out []Flag
	if d := l.GetDriver(); d != "" {
		out = append(out, Flag{Name: "log-driver", Value: d, Arg: EscapeShellValue(d)})
	}
	return append(out, argumentize("log-opt", l.GetOptions())...)
}

// optionFlags is Kamal's optionize: --name "value", or --name for true.
func optionFlags(c *specv1.Container) []Flag {
	var out []Flag
	for _, o := range c.GetOptions() {
		if o.GetBare() {
			out = append(out, Flag{Name: o.GetName(), Value: "true", Form: Bare})
			continue
		}
		out = append(out, Flag{Name: o.GetName(), Value: o.GetValue(), Arg: EscapeShellValue(o.GetValue())})
	}
	return out
}

// Words renders flags as the words of Kamal's command line.
func Words(flags []Flag) []string {
	var out []string
	joined := false // the last word is a Joined group
	for _, f := range flags {
		switch f.Form {
		case Bare:
			out = append(out, "--"+f.Name)
		case Equals:
			out = append(out, "--"+f.Name+"="+f.Arg)
		case Joined:
			w := "--" + f.Name + " " + f.Arg
			if joined {
				out[len(out)-1] += " " + w
			} else {
				out = append(out, w)
			}
		default:
			out = append(out, "--"+f.Name, f.Arg)
		}
		joined = f.Form == Joined
	}
	return out
}

// DockerRunArgs renders the `docker run` Kamal uses for c, with Kamal's
// defaults for an unset restart policy (unless-stopped) and network
// (kamal). The hostname is rendered as given (the corpus replaces it with
// HOST).
func DockerRunArgs(c *specv1.Container) []string {
	if c.GetRestart() == "" || c.GetNetwork() == "" {
		c = proto.Clone(c).(*specv1.Container)
		if c.Restart == "" {
			c.Restart = "unless-stopped"
		}
		if c.Network == "" {
			c.Network = "kamal"
		}
	}
	args := append([]string{"docker", "run"}, Words(RunFlags(c))...)
	args = append(args, c.GetImage())
	if c.GetCmd() != "" {
		args = append(args, c.GetCmd())
	}
	return append(args, c.GetArgs()...)
}

// legacyProxyOptions is the default of Kamal's deprecated
// .kamal/proxy/options file: the publish and log-opt flags, unquoted.
func legacyProxyOptions(c *specv1.Container) string {
	var words []string
	for _, f := range append(repeated("publish", c.GetPublish(), Separate), argumentize("log-opt", c.GetLogging().GetOptions())...) {
		words = append(words, "--"+f.Name, f.Value)
	}
	return strings.Join(words, " ")
}
