package kctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newAppImagesCmd is `kamal app images`: `docker image ls <repository>` on
// every host.
func newAppImagesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "images", Short: "Show app images on servers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.project(cmd, "")
			if err != nil {
				return err
			}
			rhs, err := roleHosts(p)
			if err != nil {
				return err
			}
			repo := p.cfg.Repository()
			reports, err := g.inspect(cmd.Context(), hostsOf(rhs), []string{repo}, imagesMethod)
			if err != nil {
				return err
			}
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
						tag, ok := strings.CutPrefix(rt, repo+":")
						if !ok {
							continue
						}
						fmt.Fprintf(&b, "%-40s %-20s %-14s %s\n", repo, tag, id, created)
					}
				}
				putsByHost(cmd.OutOrStdout(), "App", r.GetHost(), b.String())
			}
			return hostErrors(reports)
		},
	}
}
