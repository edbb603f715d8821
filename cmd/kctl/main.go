// Command kctl is the operator CLI (see internal/kctl).
package main

import (
	"os"

	"github.com/kctl-dev/kctl/internal/cli"
	"github.com/kctl-dev/kctl/internal/kctl"
)

func main() { os.Exit(cli.Main(kctl.Run)) }
