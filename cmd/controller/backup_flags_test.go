package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/controller"
)

func TestRunChecksBackupFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--restore", "b.kctl"}, "--restore needs --init"},
		{[]string{"--force-new-cluster", "--init"}, "excludes --init and --join"},
		{[]string{"--force-new-cluster", "--join", "127.0.0.1:1"}, "excludes --init and --join"},
	} {
		var out bytes.Buffer
		args := append([]string{"run", "--name", "c", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--raft-listen", "127.0.0.1:0"}, tc.args...)
		err := controller.Run(context.Background(), args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("controller run %v = %v, want %q", tc.args, err, tc.want)
		}
	}
}
