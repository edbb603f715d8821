package dispatcher

import (
	"fmt"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

// Limits on what an agent sends over its session. Every field that is
// stored (facts, results) or copied into the presence record (version) is
// bounded here; the controller's interceptor bounds every message as a
// whole (internal/controller/limits.go).
const (
	// MaxVersionBytes bounds Hello.version.
	MaxVersionBytes = 128
	// MaxFactsBytes bounds the facts of a Hello or a result.
	MaxFactsBytes = 256 << 10
	// MaxCommandIDBytes bounds a result's command id.
	MaxCommandIDBytes = 256
	// MaxResultErrorBytes bounds a result's one-line error.
	MaxResultErrorBytes = 4 << 10
	// MaxResultDetailBytes bounds a result's detail (log lines).
	MaxResultDetailBytes = 64 << 10
	// MaxResultVersions and MaxResultStringBytes bound a result's version
	// list and each of its strings (versions, container id).
	MaxResultVersions    = 1024
	MaxResultStringBytes = 256
	// SessionsPerAgent and SessionBurst bound how often one agent may start
	// a session on a controller (each start may write facts and
	// presence): SessionBurst at once, then one per SessionEvery.
	SessionBurst = 5
	SessionEvery = 2 * time.Second
	// GoneRetention is how long an agent whose session ended stays in the
	// presence record (as disconnected, with when it was last seen).
	GoneRetention = time.Hour
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "controller: "+format, args...)
}

// validateHello checks every field of a Hello (the name is checked against
// the certificate by the caller).
func validateHello(h *agentv1.Hello) error {
	if n := len(h.GetVersion()); n > MaxVersionBytes {
		return invalid("Hello.version is %d bytes, over the limit of %d", n, MaxVersionBytes)
	}
	for _, r := range h.GetVersion() {
		if !unicode.IsPrint(r) {
			return invalid("Hello.version holds a non-printable character %q", r)
		}
	}
	return validateFacts("Hello.facts", h.GetFacts())
}

func validateFacts(field string, f *agentv1.Facts) error {
	if n := proto.Size(f); n > MaxFactsBytes {
		return invalid("%s is %d bytes, over the limit of %d", field, n, MaxFactsBytes)
	}
	return nil
}

// validateResult checks every field of a command result.
func validateResult(r *agentv1.CommandResult) error {
	if n := len(r.GetId()); n == 0 || n > MaxCommandIDBytes {
		return invalid("CommandResult.id is %d bytes, want 1 to %d", n, MaxCommandIDBytes)
	}
	res := r.GetResult()
	checks := []struct {
		field  string
		n, max int
	}{
		{"error", len(res.GetError()), MaxResultErrorBytes},
		{"detail", len(res.GetDetail()), MaxResultDetailBytes},
		{"container_id", len(res.GetContainerId()), MaxResultStringBytes},
		{"versions", len(res.GetVersions()), MaxResultVersions},
	}
	for _, c := range checks {
		if c.n > c.max {
			return invalid("CommandResult.result.%s is %d long, over the limit of %d", c.field, c.n, c.max)
		}
	}
	for i, v := range res.GetVersions() {
		if len(v) > MaxResultStringBytes {
			return invalid("CommandResult.result.versions[%d] is %d bytes, over the limit of %d", i, len(v), MaxResultStringBytes)
		}
	}
	return validateFacts(fmt.Sprintf("CommandResult %s facts", r.GetId()), res.GetFacts())
}
