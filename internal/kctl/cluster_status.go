package kctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/cli"
)

func newClusterStatusCmd(g *globals) *cobra.Command {
	return newListCmd("status", "Show the controllers' health: state, term, last contact, applied index and lag, snapshot, disk, version; exit 1 when unhealthy", func(cmd *cobra.Command, o output) error {
		resp, err := ask(cmd.Context(), g, func(ctx context.Context, cc controllerv1.ControllerServiceClient) (*controllerv1.ClusterStatusResponse, error) {
			return cc.ClusterStatus(ctx, &controllerv1.ClusterStatusRequest{})
		})
		if err != nil {
			return err
		}
		if err := clusterStatusListing(resp).print(g.stdout, o); err != nil {
			return err
		}
		if len(resp.GetProblems()) == 0 {
			return nil
		}
		if o != "json" {
			fmt.Fprintln(g.stdout)
			for _, p := range resp.GetProblems() {
				fmt.Fprintf(g.stdout, "unhealthy: %s\n", p)
			}
		}
		return &cli.ExitError{Code: 1}
	})
}

func clusterStatusListing(resp *controllerv1.ClusterStatusResponse) listing {
	type node struct {
		Name              string `json:"name"`
		Address           string `json:"address"`
		State             string `json:"state"`
		Voter             bool   `json:"voter"`
		Term              uint64 `json:"term"`
		LastContactMillis int64  `json:"last_contact_ms"`
		AppliedIndex      uint64 `json:"applied_index"`
		Lag               uint64 `json:"lag"`
		SnapshotIndex     uint64 `json:"snapshot_index"`
		DiskFreeBytes     uint64 `json:"disk_free_bytes"`
		Version           string `json:"version"`
		Problem           string `json:"problem,omitempty"`
	}
	out := struct {
		Leader   string   `json:"leader"`
		Healthy  bool     `json:"healthy"`
		Problems []string `json:"problems"`
		Nodes    []node   `json:"nodes"`
	}{Leader: resp.GetLeader(), Healthy: len(resp.GetProblems()) == 0, Problems: append([]string{}, resp.GetProblems()...), Nodes: []node{}}
	var rows [][]string
	for _, n := range resp.GetNodes() {
		out.Nodes = append(out.Nodes, node{n.GetName(), n.GetAddress(), n.GetState(), n.GetVoter(), n.GetTerm(), n.GetLastContactMillis(),
			n.GetAppliedIndex(), n.GetLag(), n.GetSnapshotIndex(), n.GetDiskFreeBytes(), n.GetVersion(), n.GetProblem()})
		contact := "-"
		switch {
		case n.GetState() == "leader":
			contact = "leader"
		case n.GetState() == "unreachable":
		case n.GetLastContactMillis() < 0:
			contact = "never"
		default:
			contact = (time.Duration(n.GetLastContactMillis()) * time.Millisecond).Round(time.Millisecond).String()
		}
		rows = append(rows, []string{n.GetName(), n.GetAddress(), n.GetState(), fmt.Sprint(n.GetVoter()), fmt.Sprint(n.GetTerm()), contact,
			fmt.Sprint(n.GetAppliedIndex()), fmt.Sprint(n.GetLag()), fmt.Sprint(n.GetSnapshotIndex()), humanBytes(n.GetDiskFreeBytes()), n.GetVersion()})
	}
	return listing{out, []string{"NAME", "ADDRESS", "STATE", "VOTER", "TERM", "LAST CONTACT", "APPLIED", "LAG", "SNAPSHOT", "DISK FREE", "VERSION"}, rows}
}

// humanBytes is n in B, KiB, MiB, GiB or TiB, "-" for 0.
func humanBytes(n uint64) string {
	if n == 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}
