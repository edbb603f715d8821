package kctl

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// One host's output streams through as it arrives (the header comes with
// the first byte, not after the end), in Kamal's layout; an error is
// printed under it, and a permission error alone is returned without a
// header.
func TestEachHost_OneHostStreams(t *testing.T) {
	targets := []streamTarget{{host: "web-1", kind: "App"}}
	var sb strings.Builder
	sawHeader := false
	err := eachHost(context.Background(), &sb, targets, false, func(_ context.Context, _ streamTarget, out io.Writer) error {
		_, _ = io.WriteString(out, "line 1\n")
		sawHeader = sb.String() == "App Host: web-1\nline 1\n" // written already
		_, _ = io.WriteString(out, "line 2")
		return nil
	})
	if err != nil || !sawHeader || sb.String() != "App Host: web-1\nline 1\nline 2\n\n" {
		t.Errorf("eachHost = %v, streamed %v, output %q", err, sawHeader, sb.String())
	}

	sb.Reset()
	err = eachHost(context.Background(), &sb, targets, false, func(context.Context, streamTarget, io.Writer) error {
		return errors.New("boom")
	})
	if err == nil || sb.String() != "App Host: web-1\nboom\n\n" {
		t.Errorf("failed host: %v, output %q", err, sb.String())
	}

	sb.Reset()
	denied := status.Error(codes.PermissionDenied, "viewer")
	err = eachHost(context.Background(), &sb, targets, false, func(context.Context, streamTarget, io.Writer) error { return denied })
	if status.Code(err) != codes.PermissionDenied || sb.Len() != 0 {
		t.Errorf("denied: %v, output %q", err, sb.String())
	}

	sb.Reset()
	err = eachHost(context.Background(), &sb, targets, true, func(_ context.Context, _ streamTarget, out io.Writer) error {
		_, _ = io.WriteString(out, "raw\n")
		return nil
	})
	if err != nil || sb.String() != "raw\n" {
		t.Errorf("raw: %v, output %q", err, sb.String())
	}
}
