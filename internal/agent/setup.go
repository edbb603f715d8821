package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/pki"
)

// DefaultEnvFile is the packaged unit's EnvironmentFile.
const DefaultEnvFile = "/etc/kctl/agent.env"

// setupArgs are `agent setup`'s flags.
type setupArgs struct {
	name, controllers, envFile, tokenFile string
	noStart                               bool
}

// newSetupCmd is `agent setup`, the command `kctl agents add` prints: it
// writes the packaged unit's environment file and starts the service.
func newSetupCmd(stdout io.Writer) *cobra.Command {
	var a setupArgs
	cmd := &cobra.Command{
		Use:   "setup --name NAME --controller ADDR[,ADDR] < TOKEN",
		Short: "Configure the packaged kctl-agent service (name, controllers, join token) and start it",
		Long: `Configure the packaged kctl-agent service and start it: the command that
kctl agents add NAME prints. It reads the join token from standard input
(or --token-file, or $KCTL_TOKEN), so the token never appears in ps, and
sets KCTL_NAME, KCTL_CONTROLLERS and KCTL_TOKEN in the environment file
(mode 0600; its other lines, such as KCTL_AGENT_ARGS or HTTPS_PROXY, stay).
Then, where systemd runs, it enables and starts kctl-agent.service.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.run(cmd.InOrStdin(), stdout) },
	}
	f := cmd.Flags()
	f.StringVar(&a.name, "name", "", "this server's name, as config/deploy.yml names it")
	f.StringVar(&a.controllers, "controller", "", "controller API addresses, comma-separated")
	f.StringVar(&a.envFile, "env-file", DefaultEnvFile, "the service's environment file")
	f.StringVar(&a.tokenFile, "token-file", "", "read the join token from this file instead of standard input")
	f.BoolVar(&a.noStart, "no-start", false, "write the environment file only")
	return cmd
}

func (a *setupArgs) run(stdin io.Reader, stdout io.Writer) error {
	if a.name == "" || a.controllers == "" {
		return errors.New("agent setup: --name and --controller are required (kctl agents add NAME prints the whole command)")
	}
	tok, err := a.token(stdin)
	if err != nil {
		return err
	}
	if _, err := pki.ParseToken(tok); err != nil {
		return fmt.Errorf("agent setup: %w (copy the whole command kctl agents add printed)", err)
	}
	set := map[string]string{"KCTL_NAME": a.name, "KCTL_CONTROLLERS": a.controllers, "KCTL_TOKEN": tok}
	if err := setEnvFile(a.envFile, set); err != nil {
		return fmt.Errorf("agent setup: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", a.envFile)
	if a.noStart {
		return nil
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		fmt.Fprintf(stdout, "systemd is not running here: start the agent with\n  set -a; . %s; set +a; kctl-agent run --name \"$KCTL_NAME\" --controller \"$KCTL_CONTROLLERS\" --data-dir /var/lib/kctl-agent\n", a.envFile)
		return nil
	}
	out, err := exec.Command("systemctl", "enable", "--now", "kctl-agent.service").CombinedOutput()
	if err != nil {
		return fmt.Errorf("agent setup: systemctl enable --now kctl-agent.service: %v: %s", err, strings.TrimSpace(string(out)))
	}
	fmt.Fprintln(stdout, "started kctl-agent.service (journalctl -u kctl-agent to follow it)")
	return nil
}

// token reads the join token: --token-file, else $KCTL_TOKEN, else the
// first line of stdin.
func (a *setupArgs) token(stdin io.Reader) (string, error) {
	if a.tokenFile != "" || os.Getenv(ctlclient.TokenEnv) != "" {
		return ctlclient.ResolveToken("", a.tokenFile)
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if tok := strings.TrimSpace(line); tok != "" {
		return tok, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("agent setup: reading the token from standard input: %w", err)
	}
	return "", errors.New("agent setup: no join token on standard input (echo TOKEN | kctl-agent setup ...)")
}

// setEnvFile sets keys in an environment file (KEY=VALUE lines), keeping
// its other lines and comments, and writes it atomically with mode 0600.
// A missing file is created.
func setEnvFile(path string, set map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var lines []string
	done := map[string]bool{}
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if k, _, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			if v, want := set[strings.TrimSpace(k)]; want {
				if done[k] {
					continue
				}
				l, done[k] = k+"="+v, true
			}
		}
		if l != "" || len(lines) > 0 {
			lines = append(lines, l)
		}
	}
	for _, k := range []string{"KCTL_NAME", "KCTL_CONTROLLERS", "KCTL_TOKEN"} {
		if v, ok := set[k]; ok && !done[k] {
			lines = append(lines, k+"="+v)
		}
	}
	return atomicfile.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}
