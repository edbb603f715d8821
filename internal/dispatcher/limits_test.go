package dispatcher

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
)

func TestValidate_EveryFieldHasALimit(t *testing.T) {
	big := func(n int) string { return strings.Repeat("x", n) }
	result := func(r *agentv1.Result) *agentv1.CommandResult { return &agentv1.CommandResult{Id: "c1", Result: r} }
	tests := []struct {
		name string
		err  error
		want string // "" for accepted
	}{
		{"hello ok", validateHello(&agentv1.Hello{Name: "a", Version: big(MaxVersionBytes), Facts: &agentv1.Facts{Hostname: "h"}}), ""},
		{"hello version", validateHello(&agentv1.Hello{Name: "a", Version: big(MaxVersionBytes + 1)}), "Hello.version is 129 bytes"},
		{"hello version control", validateHello(&agentv1.Hello{Name: "a", Version: "v1\n"}), "non-printable"},
		{"hello facts", validateHello(&agentv1.Hello{Name: "a", Facts: &agentv1.Facts{Hostname: big(MaxFactsBytes)}}), "Hello.facts is"},
		{"result ok", validateResult(result(&agentv1.Result{Ok: true, Detail: big(MaxResultDetailBytes)})), ""},
		{"result id", validateResult(&agentv1.CommandResult{Id: big(MaxCommandIDBytes + 1)}), "CommandResult.id"},
		{"result no id", validateResult(&agentv1.CommandResult{}), "CommandResult.id"},
		{"result error", validateResult(result(&agentv1.Result{Error: big(MaxResultErrorBytes + 1)})), "result.error"},
		{"result detail", validateResult(result(&agentv1.Result{Detail: big(MaxResultDetailBytes + 1)})), "result.detail"},
		{"result container", validateResult(result(&agentv1.Result{ContainerId: big(MaxResultStringBytes + 1)})), "result.container_id"},
		{"result versions", validateResult(result(&agentv1.Result{Versions: make([]string, MaxResultVersions+1)})), "result.versions"},
		{"result version", validateResult(result(&agentv1.Result{Versions: []string{big(MaxResultStringBytes + 1)}})), "versions[0]"},
		{"result facts", validateResult(result(&agentv1.Result{Facts: &agentv1.Facts{Os: big(MaxFactsBytes)}})), "facts is"},
	}
	for _, tt := range tests {
		if tt.want == "" {
			if tt.err != nil {
				t.Errorf("%s: = %v, want accepted", tt.name, tt.err)
			}
			continue
		}
		if status.Code(tt.err) != codes.InvalidArgument || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: = %v, want InvalidArgument containing %q", tt.name, tt.err, tt.want)
		}
	}
}
