package wirelimit

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

func TestValidate_EveryFieldHasALimit(t *testing.T) {
	big := func(n int) string { return strings.Repeat("x", n) }
	result := func(r *agentv1.Result) *agentv1.CommandResult { return &agentv1.CommandResult{Id: "c1", Result: r} }
	tests := []struct {
		name string
		err  error
		want string // "" for accepted
	}{
		{"hello ok", ValidateHello(&agentv1.Hello{Name: "a", Version: big(MaxVersionBytes), Facts: &agentv1.Facts{Hostname: "h"}}), ""},
		{"hello version", ValidateHello(&agentv1.Hello{Name: "a", Version: big(MaxVersionBytes + 1)}), "Hello.version is 129 bytes"},
		{"hello version control", ValidateHello(&agentv1.Hello{Name: "a", Version: "v1\n"}), "non-printable"},
		{"hello facts", ValidateHello(&agentv1.Hello{Name: "a", Facts: &agentv1.Facts{Hostname: big(MaxFactsBytes)}}), "Hello.facts is"},
		{"result ok", ValidateResult(result(&agentv1.Result{Ok: true, Detail: big(MaxResultDetailBytes)})), ""},
		{"result id", ValidateResult(&agentv1.CommandResult{Id: big(MaxCommandIDBytes + 1)}), "CommandResult.id"},
		{"result no id", ValidateResult(&agentv1.CommandResult{}), "CommandResult.id"},
		{"result error", ValidateResult(result(&agentv1.Result{Error: big(MaxResultErrorBytes + 1)})), "result.error"},
		{"result detail", ValidateResult(result(&agentv1.Result{Detail: big(MaxResultDetailBytes + 1)})), "result.detail"},
		{"result container", ValidateResult(result(&agentv1.Result{ContainerId: big(MaxResultStringBytes + 1)})), "result.container_id"},
		{"result versions", ValidateResult(result(&agentv1.Result{Versions: make([]string, MaxResultVersions+1)})), "result.versions"},
		{"result version", ValidateResult(result(&agentv1.Result{Versions: []string{big(MaxResultStringBytes + 1)}})), "versions[0]"},
		{"result facts", ValidateResult(result(&agentv1.Result{Facts: &agentv1.Facts{Os: big(MaxFactsBytes)}})), "facts is"},
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

func TestFit_ResultsAndFactsFitTheLimits(t *testing.T) {
	big := func(n int) string { return strings.Repeat("x", n) }
	images := make([]*agentv1.ImageFact, 5000)
	for i := range images {
		images[i] = &agentv1.ImageFact{Id: big(64), RepoTags: []string{big(100)}}
	}
	r := &agentv1.Result{
		Error: big(MaxResultErrorBytes * 2), Detail: big(MaxResultDetailBytes*2-1) + "END", ContainerId: big(1000),
		Versions: append(make([]string, MaxResultVersions), big(1000)), Facts: &agentv1.Facts{Hostname: "h", Images: images},
	}
	fit := FitResult(r)
	if err := ValidateResult(&agentv1.CommandResult{Id: "c1", Result: fit}); err != nil {
		t.Fatalf("ValidateResult(FitResult(r)) = %v", err)
	}
	if !strings.HasSuffix(fit.GetDetail(), "END") {
		t.Errorf("FitResult kept the detail's head, want its tail (the last log lines)")
	}
	if len(fit.GetFacts().GetImages()) == 0 || fit.GetFacts().GetHostname() != "h" {
		t.Errorf("FitResult dropped every image or the hostname: %d images", len(fit.GetFacts().GetImages()))
	}
	if len(r.GetDetail()) != MaxResultDetailBytes*2+2 {
		t.Errorf("FitResult changed its argument")
	}
	small := &agentv1.Result{Ok: true, Detail: "d"}
	if FitResult(small) != small {
		t.Errorf("FitResult copied a result that fits")
	}
}

func TestValidateExecInput(t *testing.T) {
	ok := []*streamv1.ExecInput{
		{Msg: &streamv1.ExecInput_Stdin{Stdin: make([]byte, MaxStdinChunkBytes)}},
		{Msg: &streamv1.ExecInput_CloseStdin{CloseStdin: &streamv1.CloseStdin{}}},
		{Msg: &streamv1.ExecInput_Resize{Resize: &streamv1.TermSize{Rows: 50, Cols: 200}}},
		{Msg: &streamv1.ExecInput_Signal{Signal: &streamv1.Signal{Name: "INT"}}},
	}
	for _, in := range ok {
		if err := ValidateExecInput(in); err != nil {
			t.Errorf("ValidateExecInput(%v) = %v, want nil", in, err)
		}
	}
	bad := map[string]*streamv1.ExecInput{
		"stdin chunk of 65537 bytes is over the limit": {Msg: &streamv1.ExecInput_Stdin{Stdin: make([]byte, MaxStdinChunkBytes+1)}},
		"signal name":     {Msg: &streamv1.ExecInput_Signal{Signal: &streamv1.Signal{Name: strings.Repeat("X", 17)}}},
		"terminal of":     {Msg: &streamv1.ExecInput_Resize{Resize: &streamv1.TermSize{Rows: 1, Cols: MaxTermDimension + 1}}},
		"an unknown kind": {},
	}
	for want, in := range bad {
		if err := ValidateExecInput(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateExecInput(%v) = %v, want an error with %q", in, err, want)
		}
	}
}
