package docker

import (
	"regexp"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Container names. Specs carry Kamal's names (`<service>-<role>[-<dest>]-<version>`,
// accessories' `<service>-<name>`); on the engine every app, accessory,
// assets and run-once container is named Config.NamePrefix + that name, so
// several agents sharing one engine (tests) keep apart. These two functions
// are the only places the prefix is added or removed: the controller only
// ever sees spec names. The proxy container is named by Config.ProxyName and
// carries no prefix.

// engineName maps a spec's container name to the engine's.
func (r *Runtime) engineName(spec string) string {
	return r.cfg.NamePrefix + spec
}

// specName maps an engine container name ("/name" or "name") back to the
// spec's; ok is false when the name does not carry this runtime's prefix.
func (r *Runtime) specName(engine string) (spec string, ok bool) {
	engine = strings.TrimPrefix(engine, "/")
	return strings.CutPrefix(engine, r.cfg.NamePrefix)
}

// name returns a listed container's spec name, or "" when it is not named
// with this runtime's prefix.
func (r *Runtime) name(s container.Summary) string {
	if len(s.Names) == 0 {
		return ""
	}
	n, ok := r.specName(s.Names[0])
	if !ok {
		return ""
	}
	return n
}

// engineNameFilter is the exact-name filter for an engine container name.
func engineNameFilter(engine string) string {
	return "^/?" + regexp.QuoteMeta(engine) + "$"
}
