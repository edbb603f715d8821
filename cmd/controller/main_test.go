package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/testenv"
)

func TestHelpAndVersion(t *testing.T) {
	testenv.HelpAndVersion(t, "controller", controller.Run, "--token-file string", "--raft-listen string")
}

func TestRunRejectsInitWithJoin(t *testing.T) {
	var out bytes.Buffer
	err := controller.Run(context.Background(), []string{"run", "--name", "c", "--data-dir", t.TempDir(), "--init", "--join", "127.0.0.1:1"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("controller run --init --join = %v, want them refused together", err)
	}
}
