package ctlclient

import (
	"fmt"
	"os"
	"strings"
)

// TokenEnv names the environment variable that carries a join token, so it
// need not appear on a command line (and in `ps`).
const TokenEnv = "KCTL_TOKEN"

// ResolveToken returns the join token from --token, else --token-file, else
// $KCTL_TOKEN; empty when none is given.
func ResolveToken(flag, file string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(os.Getenv(TokenEnv)), nil
}
