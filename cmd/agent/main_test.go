package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/version"
)

func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--help"}, []string{"Usage:", "agent run --name NAME", "--token-file string", "--controller string"}},
		{[]string{"version"}, []string{"agent " + version.Version + "\n"}},
		{[]string{"--version"}, []string{"agent " + version.Version + "\n"}},
	} {
		var out, errb bytes.Buffer
		if err := agent.Run(context.Background(), tc.args, &out, &errb, nil); err != nil {
			t.Errorf("agent %v = %v, want nil", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("agent %v printed %q, want it to contain %q", tc.args, out.String(), w)
			}
		}
	}
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
