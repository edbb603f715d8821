// Package wirelimit holds the limits on what an agent sends over its
// session (Hello, command results): the controller's dispatcher refuses a
// message over them (Validate*), the agent makes its messages fit (Fit*), so
// a large result is trimmed rather than refused and redelivered forever.
// It also bounds an operator's exec inputs (ValidateExecInput).
// It is a leaf: the agent and kctl link no server code through it.
package wirelimit

import (
	"fmt"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

// Limits on what an agent sends over its session. Every field that is
// stored (facts, results) or copied into the presence record (version) is
// bounded here; the controller's interceptor bounds every message as a
// whole (internal/controller/limits.go), and the dispatcher bounds how
// often an agent starts a session.
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
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "controller: "+format, args...)
}

// ValidateHello checks every field of a Hello (the name is checked against
// the certificate by the caller).
func ValidateHello(h *agentv1.Hello) error {
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

// ValidateResult checks every field of a command result.
func ValidateResult(r *agentv1.CommandResult) error {
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

// FitFacts trims f to MaxFactsBytes: images, then containers, are dropped
// from the end until it fits.
func FitFacts(f *agentv1.Facts) *agentv1.Facts {
	if f == nil || proto.Size(f) <= MaxFactsBytes {
		return f
	}
	f = proto.CloneOf(f)
	for proto.Size(f) > MaxFactsBytes && len(f.Images) > 0 {
		f.Images = f.Images[:len(f.Images)/2]
	}
	for proto.Size(f) > MaxFactsBytes && len(f.Containers) > 0 {
		f.Containers = f.Containers[:len(f.Containers)/2]
	}
	if proto.Size(f) > MaxFactsBytes {
		f = &agentv1.Facts{Hostname: trim(f.GetHostname(), 253), Os: trim(f.GetOs(), 256), Arch: trim(f.GetArch(), 64), DockerVersion: trim(f.GetDockerVersion(), 256), AgentVersion: trim(f.GetAgentVersion(), MaxVersionBytes)}
	}
	return f
}

// FitResult trims r to the limits: the error's head, the detail's tail (the
// last log lines), the first versions, the facts (FitFacts).
func FitResult(r *agentv1.Result) *agentv1.Result {
	if r == nil {
		return nil
	}
	fits := len(r.GetError()) <= MaxResultErrorBytes && len(r.GetDetail()) <= MaxResultDetailBytes &&
		len(r.GetContainerId()) <= MaxResultStringBytes && len(r.GetVersions()) <= MaxResultVersions &&
		proto.Size(r.GetFacts()) <= MaxFactsBytes
	for _, v := range r.GetVersions() {
		fits = fits && len(v) <= MaxResultStringBytes
	}
	if fits {
		return r
	}
	r = proto.CloneOf(r)
	r.Error = trim(r.Error, MaxResultErrorBytes)
	if n := len(r.Detail); n > MaxResultDetailBytes {
		r.Detail = r.Detail[n-MaxResultDetailBytes:]
	}
	r.ContainerId = trim(r.ContainerId, MaxResultStringBytes)
	if len(r.Versions) > MaxResultVersions {
		r.Versions = r.Versions[:MaxResultVersions]
	}
	for i, v := range r.Versions {
		r.Versions[i] = trim(v, MaxResultStringBytes)
	}
	r.Facts = FitFacts(r.Facts)
	return r
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Limits on an operator's exec inputs after the start (checked by the
// controller kctl reaches, internal/relay): kctl sends stdin in chunks of
// at most MaxStdinChunkBytes, well under the stream's 1 MiB message limit.
const (
	// MaxStdinChunkBytes bounds one stdin message of an exec.
	MaxStdinChunkBytes = 64 << 10
	// MaxSignalNameBytes bounds a signal's name (INT, TERM, WINCH, …).
	MaxSignalNameBytes = 16
	// MaxTermDimension bounds a terminal's rows and columns.
	MaxTermDimension = 10000
)

// ValidateExecInput checks one input of an exec session after its start:
// stdin, close stdin, resize or signal.
func ValidateExecInput(in *streamv1.ExecInput) error {
	switch m := in.GetMsg().(type) {
	case *streamv1.ExecInput_Stdin:
		if n := len(m.Stdin); n > MaxStdinChunkBytes {
			return fmt.Errorf("a stdin chunk of %d bytes is over the limit of %d (send stdin in smaller writes)", n, MaxStdinChunkBytes)
		}
	case *streamv1.ExecInput_Signal:
		if n := len(m.Signal.GetName()); n == 0 || n > MaxSignalNameBytes {
			return fmt.Errorf("a signal name of %d bytes, want 1 to %d", n, MaxSignalNameBytes)
		}
	case *streamv1.ExecInput_Resize:
		if r, c := m.Resize.GetRows(), m.Resize.GetCols(); r > MaxTermDimension || c > MaxTermDimension {
			return fmt.Errorf("a terminal of %d×%d is over the limit of %d×%d", r, c, MaxTermDimension, MaxTermDimension)
		}
	case *streamv1.ExecInput_CloseStdin:
	default:
		return fmt.Errorf("an exec input of an unknown kind %T", m)
	}
	return nil
}
