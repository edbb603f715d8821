package raftstore

import (
	"log/slog"
	"os"
)

// KCTL_RAFT_LOG=1 sends the raft logs of this package's test clusters to
// stderr (other packages pass WithLogger).
func init() {
	if os.Getenv("KCTL_RAFT_LOG") == "1" {
		testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}
