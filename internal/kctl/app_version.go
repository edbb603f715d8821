package kctl

import (
	"io"

	"github.com/spf13/cobra"

	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
)

// newAppVersionCmd is `kamal app version`: the version running on each
// host (of its first role).
func newAppVersionCmd(g *globals) *cobra.Command {
	return newAppViewCmd(g, "version", "Show app version currently running on servers", versionMethod, nil,
		func(w io.Writer, p *project, rhs []roleHost, reports []*opsv1.HostFacts) {
			byHost := factsByHost(reports)
			done := map[string]bool{}
			for _, rh := range rhs {
				if f, ok := byHost[rh.host]; ok && !done[rh.host] {
					done[rh.host] = true
					putsByHost(w, "App", rh.host, currentVersion(p, f, rh.role))
				}
			}
		})
}
