package kctl

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	fleetv1 "github.com/kctl-dev/kctl/gen/kctl/fleet/v1"
	"github.com/kctl-dev/kctl/internal/blobstore"
)

// agentsUpgradeArgs are agents upgrade's flags.
type agentsUpgradeArgs struct {
	files, digests []string
	batch          int
	reconnect      time.Duration
}

// upgradeBinary is one agent binary: its file, digest, size and the
// architecture its ELF header names.
type upgradeBinary struct {
	path, sha256, arch string
	size               int64
}

func newAgentsUpgradeCmd(g *globals) *cobra.Command {
	var a agentsUpgradeArgs
	cmd := &cobra.Command{
		Use:   "upgrade [NAME...] --file BINARY[,BINARY] --sha256 DIGEST[,DIGEST]",
		Short: "Upgrade agents in place through the controllers, in batches",
		Long: `Upgrade agents in place, through the controllers: no SSH, no inbound port.

kctl checks each --file against its --sha256 (the digest you got from the
build you trust) and reads its architecture from its ELF header, uploads
the binaries to the controllers (each keeps a copy on disk, outside Raft),
then upgrades the agents (all, or the NAMEs given) --batch at a time: each
agent downloads the binary for its architecture over its own connection,
verifies the digest, checks that it runs, installs it beside the packaged
binary and restarts on it. A batch is done when its agents have reconnected
reporting the new version; an agent whose new binary does not come back is
rolled back by its own supervisor, and the upgrade stops there with an
error. Every step is audited. A later package upgrade of kctl-agent wins
over a self-upgrade.`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.run(cmd.Context(), g, args) },
	}
	f := cmd.Flags()
	f.StringSliceVar(&a.files, "file", nil, "agent binaries, one per architecture (comma-separated or repeated)")
	f.StringSliceVar(&a.digests, "sha256", nil, "their SHA-256 digests, in the same order")
	f.IntVar(&a.batch, "batch", 1, "how many agents to upgrade at once")
	f.DurationVar(&a.reconnect, "reconnect-timeout", 60*time.Second, "how long an upgraded agent has to reconnect with the new version")
	return cmd
}

func (a *agentsUpgradeArgs) run(ctx context.Context, g *globals, names []string) error {
	bins, err := a.binaries()
	if err != nil {
		return err
	}
	if a.batch < 1 {
		return errors.New("--batch must be at least 1")
	}
	for _, b := range bins {
		if err := g.conn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) error { return uploadBlob(ctx, cc, b) }); err != nil {
			return fmt.Errorf("uploading %s: %w", b.path, err)
		}
		fmt.Fprintf(g.stdout, "Uploaded %s (%s, sha256:%s)\n", b.path, b.arch, b.sha256[:12])
	}
	targets, err := a.targets(ctx, g, names, bins)
	if err != nil {
		return err
	}
	for i := 0; i < len(targets); i += a.batch {
		batch := targets[i:min(i+a.batch, len(targets))]
		if err := a.upgradeBatch(ctx, g, batch); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.stdout, "Upgraded %d agents\n", len(targets))
	return nil
}

// binaries checks the files against their digests and reads their
// architectures.
func (a *agentsUpgradeArgs) binaries() ([]upgradeBinary, error) {
	if len(a.files) == 0 || len(a.files) != len(a.digests) {
		return nil, errors.New("give each --file its --sha256 (the same number of each, in the same order)")
	}
	var bins []upgradeBinary
	for i, path := range a.files {
		b, err := inspectBinary(path)
		if err != nil {
			return nil, err
		}
		if want := strings.TrimPrefix(strings.ToLower(a.digests[i]), "sha256:"); b.sha256 != want {
			return nil, fmt.Errorf("%s: its SHA-256 is %s, not %s: refusing to upload it", path, b.sha256, want)
		}
		if slices.ContainsFunc(bins, func(o upgradeBinary) bool { return o.arch == b.arch }) {
			return nil, fmt.Errorf("%s: a second binary for %s", path, b.arch)
		}
		bins = append(bins, b)
	}
	return bins, nil
}

func inspectBinary(path string) (upgradeBinary, error) {
	ef, err := elf.Open(path)
	if err != nil {
		return upgradeBinary{}, fmt.Errorf("%s: not a Linux agent binary: %w", path, err)
	}
	arch := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[ef.Machine]
	ef.Close()
	if arch == "" {
		return upgradeBinary{}, fmt.Errorf("%s: unsupported architecture %v (amd64 or arm64)", path, ef.Machine)
	}
	f, err := os.Open(path)
	if err != nil {
		return upgradeBinary{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return upgradeBinary{}, err
	}
	return upgradeBinary{path: path, sha256: hex.EncodeToString(h.Sum(nil)), arch: arch, size: n}, nil
}

// goArch names an architecture as Go does (the engine says x86_64,
// aarch64).
func goArch(a string) string {
	switch a {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// uploadBlob sends a binary to a controller, which copies it to the others.
func uploadBlob(ctx context.Context, cc grpc.ClientConnInterface, b upgradeBinary) error {
	f, err := os.Open(b.path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = blobstore.Upload(ctx, fleetv1.NewBlobServiceClient(cc), b.sha256, b.size, false, f)
	return err
}

// upgradeTarget is an agent and the binary for its architecture.
type upgradeTarget struct {
	name string
	bin  upgradeBinary
}

// targets picks the agents (all, or names) and each one's binary.
func (a *agentsUpgradeArgs) targets(ctx context.Context, g *globals, names []string, bins []upgradeBinary) ([]upgradeTarget, error) {
	var out []upgradeTarget
	err := g.call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		out = nil
		if len(names) == 0 {
			resp, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
			if err != nil {
				return err
			}
			for _, ag := range resp.GetAgents() {
				if ag.GetStatus() != "pending" {
					names = append(names, ag.GetName())
				}
			}
		}
		for _, n := range names {
			d, err := cc.DescribeAgent(ctx, &controllerv1.DescribeAgentRequest{Name: n})
			if err != nil {
				return err
			}
			arch := goArch(d.GetFacts().GetArch())
			i := slices.IndexFunc(bins, func(b upgradeBinary) bool { return b.arch == arch })
			if i < 0 {
				return fmt.Errorf("agent %s runs on %q: no --file for it", n, arch)
			}
			out = append(out, upgradeTarget{n, bins[i]})
		}
		return nil
	})
	return out, err
}

// upgradeBatch upgrades a batch and waits for every agent of it to
// reconnect with the version its new binary reported.
func (a *agentsUpgradeArgs) upgradeBatch(ctx context.Context, g *globals, batch []upgradeTarget) error {
	want := map[string]string{}
	for _, t := range batch {
		var resp *fleetv1.UpgradeAgentResponse
		err := g.conn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) (err error) {
			resp, err = fleetv1.NewUpgradeServiceClient(cc).UpgradeAgent(ctx, &fleetv1.UpgradeAgentRequest{Agent: t.name, Sha256: t.bin.sha256, Size: t.bin.size})
			return err
		})
		if err != nil {
			return fmt.Errorf("agent %s: %w (the upgrade stops here)", t.name, err)
		}
		want[t.name] = resp.GetVersion()
		fmt.Fprintf(g.stdout, "  %s: installed %s, restarting\n", t.name, resp.GetVersion())
	}
	deadline := time.Now().Add(a.reconnect)
	down := map[string]bool{} // seen restarting
	for len(want) > 0 {
		var agents []*controllerv1.AgentInfo
		err := g.call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
			resp, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
			agents = resp.GetAgents()
			return err
		})
		if err != nil {
			return err
		}
		for _, ag := range agents {
			n := ag.GetName()
			v, ok := want[n]
			switch {
			case !ok:
			case ag.GetStatus() != "connected":
				down[n] = true
			case ag.GetVersion() == v:
				fmt.Fprintf(g.stdout, "  %s: running %s\n", n, v)
				delete(want, n)
			case down[n]:
				return fmt.Errorf("agent %s came back running %s, not %s: its new binary failed and its supervisor rolled it back; the upgrade stops here", n, ag.GetVersion(), v)
			}
		}
		if len(want) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var late []string
			for n, v := range want {
				late = append(late, fmt.Sprintf("%s (want %s)", n, v))
			}
			slices.Sort(late)
			return fmt.Errorf("not back with the new version within %s: %s; an agent whose new binary fails is rolled back by its supervisor (kctl agents shows the version it runs); the upgrade stops here", a.reconnect, strings.Join(late, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}
