package controller_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/kctl-dev/kctl/internal/controller"
)

// secretLooking matches field names that suggest a secret: the redaction
// walker's descriptor test's list (internal/deploy/redact_fields_test.go).
var secretLooking = regexp.MustCompile(`(?i)pass|secret|token|credential|private|user|content|cert|key_pem|auth`)

// canaryFill sets every field of m, recursively (lists with one element),
// to a distinct canary and returns the canaries under a secret-looking
// field (by its own or an enclosing field's name).
func canaryFill(m protoreflect.Message, secret bool, depth int, n *int) []string {
	var secrets []string
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		sec := secret || secretLooking.MatchString(string(fd.Name()))
		next := func() string { *n++; return fmt.Sprintf("canary%04dz", *n) }
		val := func() (protoreflect.Value, bool) {
			switch fd.Kind() {
			case protoreflect.StringKind:
				c := next()
				if sec {
					secrets = append(secrets, c)
				}
				return protoreflect.ValueOfString(c), true
			case protoreflect.BytesKind:
				c := next()
				secrets = append(secrets, c) // bytes never show
				return protoreflect.ValueOfBytes([]byte(c)), true
			case protoreflect.MessageKind:
				if depth > 6 {
					return protoreflect.Value{}, false
				}
				sub := dynamicpb.NewMessage(fd.Message())
				secrets = append(secrets, canaryFill(sub, sec, depth+1, n)...)
				return protoreflect.ValueOfMessage(sub), true
			}
			return protoreflect.Value{}, false
		}
		switch {
		case fd.IsMap():
			continue
		case fd.IsList():
			if v, ok := val(); ok {
				l := m.Mutable(fd).List()
				l.Append(v)
			}
		default:
			if v, ok := val(); ok {
				m.Set(fd, v)
			}
		}
	}
	return secrets
}

// The summary an audit entry holds of a request never shows a value under
// a secret-looking field, nor bytes, for every audited method's request,
// every field filled.
func TestAudit_SummaryHoldsNoSecret(t *testing.T) {
	for method, a := range controller.Policy {
		if !a.Audit {
			continue
		}
		svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
		req := dynamicpb.NewMessage(md.Input())
		n := 0
		secrets := canaryFill(req, false, 0, &n)
		sum := controller.Summarize(req)
		for _, s := range secrets {
			if strings.Contains(sum, s) {
				t.Errorf("%s: summary shows secret canary %s: %s", method, s, sum)
			}
		}
	}
}
