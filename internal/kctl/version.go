package kctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/version"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kctl's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.stdout, "kctl", version.Version)
			return nil
		},
	}
}
