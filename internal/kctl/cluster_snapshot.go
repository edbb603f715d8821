package kctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/backupfile"
)

func newClusterSnapshotCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Back up the cluster's state"}
	cmd.AddCommand(newClusterSnapshotSaveCmd(g))
	return cmd
}

func newClusterSnapshotSaveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent backup of every Raft table to FILE (admin)",
		Long: `Save a consistent backup of the cluster's whole state to FILE.

The backup holds every Raft table, as of one point in time after every
acknowledged write: deploys and their steps and locks, the audit log,
operators, join tokens (hashes only), controllers, agents' enrolment
(names, certificate serials, facts), revocations, commands, the desired
state of every role, and the cluster CA with its private key. Deploys
running at that moment keep their secrets record (the deploy's resolved
secrets) until they end, so a backup taken mid-deploy holds those values.
Treat the file like the CA key: it is written with mode 0600.

The file starts with a header (format, protocol version, cluster id, Raft
index, SHA-256 of the state); ` + "`controller run --init --restore FILE`" + ` checks it
before restoring. The write is atomic: FILE appears complete or not at all.
Saving is audited. It may take up to --timeout, or 10 minutes when
--timeout is not given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			timeout := 10 * time.Minute
			if cmd.Flags().Changed("timeout") {
				timeout = g.deadline
			}
			hdr, err := saveSnapshot(cmd.Context(), g, args[0], timeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out(cmd), "saved cluster %s at Raft index %d: %d records, %d bytes, sha256 %x, to %s\n",
				hdr.GetClusterId(), hdr.GetAppliedIndex(), hdr.GetRecords(), hdr.GetSize(), hdr.GetSha256(), args[0])
			return nil
		},
	}
	return cmd
}

// saveSnapshot streams the state into a temporary file beside path,
// checks it against the controller's trailer, then writes the backup file
// atomically.
func saveSnapshot(ctx context.Context, g *globals, path string, timeout time.Duration) (*controllerv1.BackupHeader, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".part-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var hdr *controllerv1.BackupHeader
	err = g.conn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		// A retry on another controller starts over.
		if err := tmp.Truncate(0); err != nil {
			return err
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		st, err := controllerv1.NewBackupServiceClient(cc).SaveSnapshot(ctx, &controllerv1.SaveSnapshotRequest{})
		if err != nil {
			return err
		}
		hdr, err = backupfile.Receive(st.Recv, tmp)
		return err
	})
	if err != nil {
		return nil, err
	}
	if hdr.GetFormat() != backupfile.Format {
		return nil, fmt.Errorf("the controller sent backup format %d; this kctl writes format %d: use a kctl of the controllers' version", hdr.GetFormat(), backupfile.Format)
	}
	if err := backupfile.WriteFile(path, hdr, io.NewSectionReader(tmp, 0, int64(hdr.GetSize()))); err != nil {
		return nil, err
	}
	return hdr, nil
}
