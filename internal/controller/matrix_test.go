package controller_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/kctl-dev/kctl/internal/agent"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/pki"
)

// call invokes method with an empty request over cc and returns the status
// code: the refusals come from the authorization interceptors, before any
// handler runs; an allowed call reaches its handler, which may refuse the
// empty request for its own reasons.
func call(t testing.TB, cc *grpc.ClientConn, method string) codes.Code {
	t.Helper()
	svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	in, out := dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return status.Code(cc.Invoke(ctx, method, in, out))
	}
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient()}, method)
	if err == nil {
		// A send that finds the stream already ended returns io.EOF; the
		// status the server ended it with comes from RecvMsg.
		if err = st.SendMsg(in); err == nil || errors.Is(err, io.EOF) {
			_ = st.CloseSend()
			err = st.RecvMsg(out)
		}
	}
	return status.Code(err)
}

// Every method the controller serves, called by every kind of caller over
// real mutual TLS, is refused exactly when Policy does not list the
// caller's role: PermissionDenied for a certificate of the wrong role,
// Unauthenticated without one. This checks that every service is behind
// the interceptors, streams included.
func TestPolicy_EnforcedForEveryMethodAndRole(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	dir := filepath.Join(t.TempDir(), "web-1")
	tc.startAgentWith("web-1", &countingRuntime{}, func(c *agent.Config) { c.DataDir = dir }, 0)
	certs := roleCerts(t, tc, dir)
	ids := map[string]pki.Identity{}
	for role, c := range certs {
		id, err := pki.IdentityFromCert(leafOf(t, c))
		if err != nil {
			t.Fatal(err)
		}
		ids[role] = id
	}
	methods := make([]string, 0, len(controller.Policy))
	for m := range controller.Policy {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	conns := map[string]*grpc.ClientConn{"anonymous": rawConn(t, tc.Nodes[0].API)}
	for role, c := range certs {
		conns[role] = rawConn(t, tc.Nodes[0].API, []tls.Certificate{c}...)
	}
	for _, m := range methods {
		allow := controller.Policy[m]
		for role, cc := range conns {
			if role == "agent" && strings.HasSuffix(m, "/Session") {
				continue // the running agent's own session; tested in auth_test
			}
			got := call(t, cc, m)
			var want bool
			switch {
			case allow.Public:
				want = true
			case role == "anonymous":
				want = false
			default:
				want = allowed(allow, ids[role])
			}
			refused := got == codes.PermissionDenied || got == codes.Unauthenticated
			if refused == want {
				t.Errorf("%s as %s = %v, want allowed %v", m, role, got, want)
			}
			if role == "anonymous" && !want && got != codes.Unauthenticated {
				t.Errorf("%s without a certificate = %v, want Unauthenticated", m, got)
			}
		}
	}
	// Spot checks that do not read Policy.
	for _, c := range []struct {
		role, method string
		want         codes.Code
	}{
		{"viewer", "/kctl.deploy.v1.DeployService/Submit", codes.PermissionDenied},
		{"deployer", "/kctl.controller.v1.ControllerService/CreateToken", codes.PermissionDenied},
		{"agent", "/kctl.controller.v1.ControllerService/ListAgents", codes.PermissionDenied},
		{"admin", "/kctl.controller.v1.InternalService/Apply", codes.PermissionDenied},
		{"anonymous", "/kctl.deploy.v1.DeployService/List", codes.Unauthenticated},
		{"viewer", "/kctl.controller.v1.ControllerService/GetCommand", codes.PermissionDenied},
		// SendCommand runs anything past the deploy lock: admins only; the
		// typed calls have their own rules.
		{"deployer", "/kctl.controller.v1.ControllerService/SendCommand", codes.PermissionDenied},
		{"viewer", "/kctl.controller.v1.ControllerService/PullImage", codes.PermissionDenied},
		{"viewer", "/kctl.controller.v1.ControllerService/Prune", codes.PermissionDenied},
		{"agent", "/kctl.controller.v1.ControllerService/PingAgent", codes.PermissionDenied},
	} {
		if got := call(t, conns[c.role], c.method); got != c.want {
			t.Errorf("%s as %s = %v, want %v", c.method, c.role, got, c.want)
		}
	}
}

// allowed reports whether a rule admits id (the same reading as
// pki.Authorizer's).
func allowed(a pki.Allow, id pki.Identity) bool {
	for _, r := range a.Roles {
		if r != id.Role {
			continue
		}
		if r != pki.RoleOperator || len(a.OperatorRoles) == 0 {
			return true
		}
		for _, o := range a.OperatorRoles {
			if o == id.OperatorRole {
				return true
			}
		}
	}
	return false
}
