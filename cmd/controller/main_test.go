package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/version"
)

func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--help"}, []string{"Usage:", "controller run --name NAME", "--token-file string", "--raft-listen string"}},
		{[]string{"version"}, []string{"controller " + version.Version + "\n"}},
		{[]string{"--version"}, []string{"controller " + version.Version + "\n"}},
	} {
		var out, errb bytes.Buffer
		if err := controller.Run(context.Background(), tc.args, &out, &errb); err != nil {
			t.Errorf("controller %v = %v, want nil", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("controller %v printed %q, want it to contain %q", tc.args, out.String(), w)
			}
		}
	}
}

func TestRunRejectsInitWithJoin(t *testing.T) {
	var out bytes.Buffer
	err := controller.Run(context.Background(), []string{"run", "--name", "c", "--data-dir", t.TempDir(), "--init", "--join", "127.0.0.1:1"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("controller run --init --join = %v, want them refused together", err)
	}
}
