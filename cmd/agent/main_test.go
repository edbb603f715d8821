package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/testenv"
)

func TestHelpAndVersion(t *testing.T) {
	testenv.HelpAndVersion(t, "agent", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return agent.Run(ctx, args, stdout, stderr, nil)
	}, "--token-file string", "--controller string")
}

func TestRunNeedsItsFlags(t *testing.T) {
	var out bytes.Buffer
	err := agent.Run(context.Background(), []string{"run", "--name", "a"}, &out, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "--data-dir and --controller are required") {
		t.Errorf("agent run --name a = %v, want the required flags named", err)
	}
	err = agent.Run(context.Background(), []string{"run", "-name", "a"}, &out, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "agent run --help") {
		t.Errorf("agent run -name a = %v, want a flag error pointing at --help", err)
	}
}
