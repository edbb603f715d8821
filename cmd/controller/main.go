// Command controller runs a kctl controller (see internal/controller).
package main

import (
	"os"

	"github.com/kctl-dev/kctl/internal/cli"
	"github.com/kctl-dev/kctl/internal/controller"
)

func main() { os.Exit(cli.Main(controller.Run)) }
