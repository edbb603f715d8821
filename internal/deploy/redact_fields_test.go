package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	specv1 "github.com/kctl-dev/kctl/gen/kctl/spec/v1"
)

// secretFields are the secret-bearing fields the walker (visitContainer,
// visitAuth, visitProxy) knows, each as the chain of fields ending at the
// value: a value is secret when the chain of fields leading to it ends with
// one of these. Add a row here when the walker learns a field.
var secretFields = [][]string{
	{"kctl.spec.v1.Container.secret_env", "kctl.spec.v1.KeyValue.value"},
	{"kctl.spec.v1.Container.files", "kctl.spec.v1.File.content"},
	{"kctl.spec.v1.ProxyDeploy.files", "kctl.spec.v1.File.content"},
	{"kctl.spec.v1.RegistryAuth.username"},
	{"kctl.spec.v1.RegistryAuth.password"},
}

// notSecret are values under a secret-looking name that are not secrets.
var notSecret = map[string]string{
	"kctl.spec.v1.Container.secret_env>kctl.spec.v1.KeyValue.key": "the variable's name, shown in plans",
	"kctl.spec.v1.Container.secret_keys":                          "the names of env.secret entries",
	"kctl.spec.v1.RegistryAuth.server":                            "the registry's host name",
	"kctl.agent.v1.Operation.sealed_secrets":                      "ciphertext only the agent opens (internal/sealbox); RedactOperation drops it all the same",
}

// secretLooking matches the field names that suggest a secret.
var secretLooking = regexp.MustCompile(`(?i)pass|secret|token|credential|private|user|content|cert|key_pem|auth`)

// leaf is one string or bytes field under a root message, filled with a
// canary value.
type leaf struct {
	chain  []string // full names of the fields from the root to the value
	path   string   // field names from the root, dot-separated
	canary string
}

func (l leaf) secret() bool {
	for _, f := range secretFields {
		if len(l.chain) >= len(f) && slices.Equal(l.chain[len(l.chain)-len(f):], f) {
			return true
		}
	}
	return false
}

func (l leaf) looksSecret() bool {
	for _, f := range l.chain {
		if secretLooking.MatchString(f[strings.LastIndexByte(f, '.')+1:]) {
			return true
		}
	}
	return false
}

func (l leaf) allowed() bool {
	for k := range notSecret {
		suffix := strings.Split(k, ">")
		if len(l.chain) >= len(suffix) && slices.Equal(l.chain[len(l.chain)-len(suffix):], suffix) {
			return true
		}
	}
	return false
}

// fill sets every string and bytes field reachable from m (one element per
// list; a oneof's first member only, as a message holds one) to a distinct
// canary and returns the fields it set.
func fill(m protoreflect.Message) []leaf {
	var out []leaf
	var walk func(m protoreflect.Message, chain []string, path string)
	walk = func(m protoreflect.Message, chain []string, path string) {
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() && o.Fields().Get(0) != fd {
				continue
			}
			ch := append(slices.Clone(chain), string(fd.FullName()))
			if slices.Contains(chain, string(fd.FullName())) {
				continue // a recursive message: once is enough
			}
			p := strings.TrimPrefix(path+"."+string(fd.Name()), ".")
			canary := fmt.Sprintf("canary<%d>", len(out))
			switch {
			case fd.IsMap():
				continue // no secret maps today; a new one shows up below
			case fd.Kind() == protoreflect.MessageKind && fd.IsList():
				walk(m.Mutable(fd).List().AppendMutable().Message(), ch, p)
			case fd.Kind() == protoreflect.MessageKind:
				walk(m.Mutable(fd).Message(), ch, p)
			case fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind:
				v := protoreflect.ValueOfString(canary)
				if fd.Kind() == protoreflect.BytesKind {
					v = protoreflect.ValueOfBytes([]byte(canary))
				}
				if fd.IsList() {
					m.Mutable(fd).List().Append(v)
				} else {
					m.Set(fd, v)
				}
				out = append(out, leaf{chain: ch, path: p, canary: canary})
			}
		}
	}
	walk(m, nil, "")
	return out
}

// unknownSecrets lists the secret-looking fields that are neither known
// to the walker nor declared not secret.
func unknownSecrets(leaves []leaf) []string {
	var out []string
	for _, l := range leaves {
		if l.looksSecret() && !l.secret() && !l.allowed() {
			out = append(out, l.path)
		}
	}
	return out
}

// operationKinds names the members of Operation's oneof.
func operationKinds() []string {
	var kinds []string
	oneof := (&agentv1.Operation{}).ProtoReflect().Descriptor().Oneofs().ByName("op")
	for i := range oneof.Fields().Len() {
		kinds = append(kinds, string(oneof.Fields().Get(i).Name()))
	}
	return kinds
}

// filledOperation returns an Operation of kind with every field filled.
func filledOperation(kind string) (*agentv1.Operation, []leaf) {
	op := &agentv1.Operation{}
	m := op.ProtoReflect()
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(kind))
	leaves := fill(m.Mutable(fd).Message())
	for i := range leaves {
		leaves[i].chain = append([]string{string(fd.FullName())}, leaves[i].chain...)
		leaves[i].path = kind + "." + leaves[i].path
	}
	return op, leaves
}

// Every field whose name suggests a secret, in every operation and in the
// deploy request, is one the redaction walker knows (or is declared not
// secret): a new secret-bearing field fails here until the walker learns it.
func TestSecretFields_EverySecretLookingFieldIsKnown(t *testing.T) {
	var all []leaf
	for _, kind := range operationKinds() {
		_, leaves := filledOperation(kind)
		all = append(all, leaves...)
	}
	all = append(all, fill((&deployv1.Request{}).ProtoReflect())...)
	if u := unknownSecrets(all); len(u) > 0 {
		t.Errorf("secret-looking fields the redaction walker does not know: %v\n"+
			"teach visitContainer/visitAuth/visitProxy (redact.go) and add them to secretFields, or to notSecret with a reason", u)
	}
	// Every field the walker knows exists.
	for _, f := range secretFields {
		if !slices.ContainsFunc(all, func(l leaf) bool { return slices.Equal(l.chain[len(l.chain)-len(f):], f) }) {
			t.Errorf("secretFields names %v, which no operation or request holds", f)
		}
	}
}

// The check above catches a field added to a message: a copy of the spec
// file whose RegistryAuth gains an api_token.
func TestSecretFields_NewFieldIsCaught(t *testing.T) {
	fdp := protodesc.ToFileDescriptorProto(specv1.File_kctl_spec_v1_spec_proto)
	for _, m := range fdp.GetMessageType() {
		if m.GetName() == "RegistryAuth" {
			m.Field = append(m.Field, &descriptorpb.FieldDescriptorProto{
				Name: proto.String("api_token"), JsonName: proto.String("apiToken"), Number: proto.Int32(99),
				Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			})
		}
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	auth := dynamicpb.NewMessage(fd.Messages().ByName("RegistryAuth"))
	if got, want := unknownSecrets(fill(auth)), []string{"api_token"}; !slices.Equal(got, want) {
		t.Errorf("unknownSecrets(RegistryAuth + api_token) = %v, want %v", got, want)
	}
}

// RedactOperation removes every secret of every operation kind, keeps every
// other value, and leaves its argument alone.
func TestRedactOperation_EveryKindEveryField(t *testing.T) {
	var withSecrets []string
	for _, kind := range operationKinds() {
		op, leaves := filledOperation(kind)
		before, _ := proto.Marshal(op)
		got, _ := proto.Marshal(RedactOperation(op))
		for _, l := range leaves {
			kept := strings.Contains(string(got), l.canary)
			switch {
			case l.secret() && kept:
				t.Errorf("RedactOperation(%s) kept the secret %s", kind, l.path)
			case !l.secret() && !kept:
				t.Errorf("RedactOperation(%s) dropped %s, which is not secret", kind, l.path)
			}
			if l.secret() && !slices.Contains(withSecrets, kind) {
				withSecrets = append(withSecrets, kind)
			}
		}
		if after, _ := proto.Marshal(op); string(after) != string(before) {
			t.Errorf("RedactOperation(%s) changed its argument", kind)
		}
	}
	slices.Sort(withSecrets)
	if want := []string{"app_control", "boot_accessory", "boot_app", "boot_proxy", "pull_image"}; !slices.Equal(withSecrets, want) {
		t.Errorf("operation kinds carrying secrets = %v, want %v", withSecrets, want)
	}
}

// Redact removes every secret of a request and keeps everything else; the
// sealed plan and the operations resolved from it agree with the walker.
func TestRedact_EveryRequestField(t *testing.T) {
	req := &deployv1.Request{}
	leaves := fill(req.ProtoReflect())
	got, _ := proto.Marshal(Redact(req))
	n := 0
	for _, l := range leaves {
		kept := strings.Contains(string(got), l.canary)
		switch {
		case l.secret() && kept:
			t.Errorf("Redact kept the secret %s", l.path)
		case !l.secret() && !kept:
			t.Errorf("Redact dropped %s, which is not secret", l.path)
		}
		if l.secret() {
			n++
		}
	}
	// registry, roles' hosts and proxy, accessories' hosts, proxy and
	// registry, proxy hosts.
	if n != 2+2+1+2+1+2+2 {
		t.Errorf("the request holds %d secret fields, want 12", n)
	}
}
