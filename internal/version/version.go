// Package version holds the build's version, stamped at link time:
//
//	go build -ldflags "-X github.com/kctl-dev/kctl/internal/version.Version=$(git describe --always --dirty)"
//
// `make build`, the demo and the test kit stamp it; a plain `go build`
// reports "dev". Every binary shows it (`kctl version`, `agent version`,
// `controller version`), the agent reports it in its session Hello, and
// controllers report theirs in the cluster status.
package version

// Version is the build's version; "dev" when not stamped.
var Version = "dev"

// LDFlag returns the -ldflags argument that stamps v into a build.
func LDFlag(v string) string {
	return "-X github.com/kctl-dev/kctl/internal/version.Version=" + v
}
