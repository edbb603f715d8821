package explain_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kctl-dev/kctl/internal/apierr"
	"github.com/kctl-dev/kctl/internal/kctl/explain"
)

func TestExplain(t *testing.T) {
	plain := errors.New("no controller reachable")
	for _, tc := range []struct {
		in   error
		want string
	}{
		{status.Error(codes.PermissionDenied, "controller: viewers may not deploy"), "permission denied: viewers may not deploy (ask an admin"},
		{status.Error(codes.Unavailable, "no leader"), "no leader (is a majority of the controllers running? try again)"},
		{apierr.AgentsUnavailable(codes.Unavailable, "hosts cannot be served", apierr.ReasonAgentNotConnected, []string{"web-1"}),
			"the agent of web-1 is not connected: check `kctl agents`"},
		{apierr.AgentsUnavailable(codes.Unavailable, "hosts cannot be served", apierr.ReasonAgentNotEnrolled, []string{"web-9"}),
			"no agent is enrolled for web-9"},
		{plain, "no controller reachable"},
	} {
		got := explain.Explain(tc.in)
		if !strings.HasPrefix(got.Error(), tc.want) {
			t.Errorf("Explain(%v) = %q, want it to start with %q", tc.in, got, tc.want)
		}
		if status.Code(got) != status.Code(tc.in) {
			t.Errorf("Explain(%v) has code %v, want the status kept (%v)", tc.in, status.Code(got), status.Code(tc.in))
		}
	}
	if explain.Explain(nil) != nil {
		t.Error("Explain(nil) != nil")
	}
}
