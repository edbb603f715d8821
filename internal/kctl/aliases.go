package kctl

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/kamalconfig"
	"github.com/kctl-dev/kctl/internal/shellwords"
)

// expandAlias runs deploy.yml's `aliases:` as commands, as Kamal's
// Alias::Command does: when the first argument names no kctl command but an
// alias, the alias's words replace it and the remaining arguments follow
// (`kctl console` → `kctl app exec -i --reuse "bin/rails console"`). The
// expansion dispatches to whatever commands the root has.
func expandAlias(root *cobra.Command, args []string) []string {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return args
	}
	if c, _, err := root.Find(args[:1]); err == nil && c != root {
		return args
	}
	dir, err := os.Getwd()
	if err != nil {
		return args
	}
	configFile, dest := flagValue(args[1:], "-c", "--config-file"), flagValue(args[1:], "-d", "--destination")
	if configFile == "" {
		configFile = "config/deploy.yml"
	}
	cfg, err := kamalconfig.Load(kamalconfig.Options{
		Dir: dir, ConfigFile: configFile, Destination: dest, Version: "unversioned",
		Secrets: kamalconfig.SecretFunc(func(string) (string, error) { return "", nil }),
	})
	if err != nil {
		return args // cobra then reports the unknown command
	}
	line, ok := cfg.Aliases[args[0]]
	if !ok {
		return args
	}
	words, err := shellwords.Split(line)
	if err != nil {
		return args
	}
	return append(words, args[1:]...)
}

// flagValue finds a string flag's value in args (`-x V`, `--long V`,
// `--long=V`, `-xV`).
func flagValue(args []string, short, long string) string {
	for i, a := range args {
		switch {
		case (a == short || a == long || a == "--"+strings.ReplaceAll(long[2:], "-", "_")) && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, long+"="):
			return strings.TrimPrefix(a, long+"=")
		case strings.HasPrefix(a, short) && len(a) > len(short) && !strings.HasPrefix(a, "--"):
			return a[len(short):]
		}
	}
	return ""
}
