// Command agent runs the kctl agent on a server (see internal/agent).
package main

import (
	"context"
	"io"
	"os"

	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/cli"
)

func main() {
	os.Exit(cli.Main(func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return agent.Run(ctx, args, stdout, stderr, nil) // nil: the Docker runtime
	}))
}
