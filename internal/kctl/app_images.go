package kctl

import (
	"fmt"
	"io"
	"strings"
	"time"

	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
	"github.com/spf13/cobra"
)

// newAppImagesCmd is `kamal app images`: `docker image ls <repository>` on
// every host.
func newAppImagesCmd(g *globals) *cobra.Command {
	return newAppViewCmd(g, "images", "Show app images on servers", imagesMethod,
		func(p *project) []string { return []string{p.cfg.Repository()} },
		func(w io.Writer, p *project, _ []roleHost, reports []*opsv1.HostFacts) {
			repo := p.cfg.Repository()
			for _, r := range reports {
				if r.GetError() != "" {
					continue
				}
				var b strings.Builder
				fmt.Fprintf(&b, "%-40s %-20s %-14s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED")
				for _, im := range r.GetFacts().GetImages() {
					id := strings.TrimPrefix(im.GetId(), "sha256:")
					id = id[:min(12, len(id))]
					created := time.Unix(im.GetCreatedUnix(), 0).UTC().Format(time.RFC3339)
					for _, rt := range im.GetRepoTags() {
						if tag, ok := strings.CutPrefix(rt, repo+":"); ok {
							fmt.Fprintf(&b, "%-40s %-20s %-14s %s\n", repo, tag, id, created)
						}
					}
				}
				putsByHost(w, "App", r.GetHost(), b.String())
			}
		})
}
