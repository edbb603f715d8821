package hooks_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/hooks"
)

func writeHook(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestRun_EnvAndSecrets(t *testing.T) {
	dir := t.TempDir()
	writeHook(t, dir, "pre-deploy", `echo "$KAMAL_SERVICE $KAMAL_VERSION $KAMAL_SERVICE_VERSION $KAMAL_HOSTS $KAMAL_COMMAND $KAMAL_LOCK $DB_PASSWORD"`)
	writeHook(t, dir, "pre-app-boot", `echo "secret=[$DB_PASSWORD] hosts=$KAMAL_HOSTS"`)
	var out bytes.Buffer
	r := &hooks.Runner{Dir: dir, WorkDir: dir, Secrets: map[string]string{"DB_PASSWORD": "s3cret"}, Output: &out}
	tags := hooks.Tags{RecordedAt: time.Unix(0, 0), Service: "app", Version: "0123456789abcdef", Hosts: []string{"a", "b"}, Command: "deploy", Lock: true}
	if err := r.Run(context.Background(), hooks.PreDeploy, tags, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "app 0123456789abcdef app@0123456 a,b deploy true s3cret\n"; got != want {
		t.Errorf("pre-deploy output = %q, want %q", got, want)
	}
	out.Reset()
	if err := r.Run(context.Background(), hooks.PreAppBoot, tags, map[string]string{"KAMAL_HOSTS": "a"}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "secret=[] hosts=a\n"; got != want {
		t.Errorf("pre-app-boot output = %q, want %q (no secrets, group hosts)", got, want)
	}
}

func TestRun_MissingSkippedAndFailure(t *testing.T) {
	dir := t.TempDir()
	r := &hooks.Runner{Dir: dir, WorkDir: dir}
	if err := r.Run(context.Background(), hooks.PostDeploy, hooks.Tags{}, nil); err != nil {
		t.Fatalf("missing hook: %v, want nil", err)
	}
	writeHook(t, dir, "pre-build", "echo nope; exit 3")
	err := r.Run(context.Background(), hooks.PreBuild, hooks.Tags{}, nil)
	if !errors.Is(err, hooks.ErrHookFailed) || !strings.Contains(err.Error(), "Hook `pre-build` failed:\nnope") {
		t.Fatalf("failing hook error = %v, want Kamal's HookError text", err)
	}
	r.Skip = true
	if err := r.Run(context.Background(), hooks.PreBuild, hooks.Tags{}, nil); err != nil {
		t.Fatalf("skipped hook: %v", err)
	}
}
