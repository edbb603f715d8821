package controller_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	opsv1 "github.com/kctl-dev/kctl/gen/kctl/ops/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/pki"
)

// Every method the controller serves must be in the Policy: the Authorizer
// denies unlisted methods, so a missing entry would be an outage, and an
// entry for a method that no longer exists is a stale grant.
func TestPolicy_CoversEveryMethod(t *testing.T) {
	served := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{controllerv1.ControllerService_ServiceDesc, controllerv1.InternalService_ServiceDesc, controllerv1.BackupService_ServiceDesc, agentv1.SessionService_ServiceDesc, deployv1.DeployService_ServiceDesc, opsv1.LifecycleService_ServiceDesc,
		streamv1.StreamService_ServiceDesc, streamv1.RelayService_ServiceDesc, streamv1.TunnelService_ServiceDesc} {
		for _, m := range sd.Methods {
			served["/"+sd.ServiceName+"/"+m.MethodName] = true
		}
		for _, s := range sd.Streams {
			served["/"+sd.ServiceName+"/"+s.StreamName] = true
		}
	}
	for m := range served {
		if _, ok := controller.Policy[m]; !ok {
			t.Errorf("Policy lacks %s", m)
		}
	}
	for m := range controller.Policy {
		if !served[m] && m[:len("/grpc.health")] != "/grpc.health" {
			t.Errorf("Policy lists %s, which is not served", m)
		}
	}
	if !controller.Policy["/kctl.controller.v1.ControllerService/Join"].Public {
		t.Error("Join must be public: joiners have no certificate yet")
	}
}

// The streams' rules: a viewer reads logs, a deployer execs into
// containers, only an admin on the host.
func TestPolicy_Streams(t *testing.T) {
	roles := func(m string) []pki.OperatorRole {
		return controller.Policy["/kctl.stream.v1.StreamService/"+m].OperatorRoles
	}
	for _, tc := range []struct {
		method string
		want   []pki.OperatorRole
	}{
		{"Logs", nil}, // any operator
		{"Exec", []pki.OperatorRole{pki.OperatorAdmin, pki.OperatorDeployer}},
		{"ServerExec", []pki.OperatorRole{pki.OperatorAdmin}},
	} {
		if got := roles(tc.method); !slices.Equal(got, tc.want) {
			t.Errorf("Policy[%s] operator roles = %v, want %v", tc.method, got, tc.want)
		}
	}
}
