package controller_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	fleetv1 "github.com/kctl-dev/kctl/gen/kctl/fleet/v1"
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
		streamv1.StreamService_ServiceDesc, streamv1.RelayService_ServiceDesc, streamv1.TunnelService_ServiceDesc,
		fleetv1.BlobService_ServiceDesc, fleetv1.UpgradeService_ServiceDesc} {
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

// The typed agent operations: a viewer pings and describes, a deployer
// pulls and prunes (deploy lock permitting), only an admin sends any
// command.
func TestPolicy_AgentOperations(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   []pki.OperatorRole
	}{
		{"PingAgent", nil},
		{"DescribeAgent", nil},
		{"PullImage", []pki.OperatorRole{pki.OperatorAdmin, pki.OperatorDeployer}},
		{"Prune", []pki.OperatorRole{pki.OperatorAdmin, pki.OperatorDeployer}},
		{"SendCommand", []pki.OperatorRole{pki.OperatorAdmin}},
	} {
		a := controller.Policy["/kctl.controller.v1.ControllerService/"+tc.method]
		if !slices.Equal(a.Roles, []pki.Role{pki.RoleOperator}) || !slices.Equal(a.OperatorRoles, tc.want) {
			t.Errorf("Policy[%s] = %v %v, want operators %v", tc.method, a.Roles, a.OperatorRoles, tc.want)
		}
	}
}

// Every method that changes anything is audited, and no read is: the list
// below is written out, not read from Policy, so dropping a mark fails here.
func TestPolicy_AuditsEveryChange(t *testing.T) {
	changes := map[string]bool{
		"/kctl.controller.v1.ControllerService/Join":             true,
		"/kctl.controller.v1.ControllerService/RenewCertificate": true,
		"/kctl.controller.v1.ControllerService/CreateToken":      true,
		"/kctl.controller.v1.ControllerService/RevokeToken":      true,
		"/kctl.controller.v1.ControllerService/AddController":    true,
		"/kctl.controller.v1.ControllerService/RemoveController": true,
		"/kctl.controller.v1.ControllerService/RemoveAgent":      true,
		"/kctl.controller.v1.ControllerService/RemoveOperator":   true,
		"/kctl.controller.v1.ControllerService/SendCommand":      true,
		"/kctl.controller.v1.ControllerService/PullImage":        true,
		"/kctl.controller.v1.ControllerService/Prune":            true,
		"/kctl.deploy.v1.DeployService/Submit":                   true,
		"/kctl.deploy.v1.DeployService/Cancel":                   true,
		"/kctl.deploy.v1.DeployService/AcquireLock":              true,
		"/kctl.deploy.v1.DeployService/ReleaseLock":              true,
		"/kctl.ops.v1.LifecycleService/App":                      true,
		"/kctl.ops.v1.LifecycleService/Proxy":                    true,
		"/kctl.ops.v1.LifecycleService/Accessory":                true,
		"/kctl.ops.v1.LifecycleService/Remove":                   true,
		"/kctl.stream.v1.StreamService/Exec":                     true,
		"/kctl.stream.v1.StreamService/ServerExec":               true,
		"/kctl.fleet.v1.BlobService/Put":                         true,
		"/kctl.controller.v1.ControllerService/Unlock":           true,
		"/kctl.controller.v1.BackupService/SaveSnapshot":         true,
		"/kctl.controller.v1.ControllerService/RotateCA":         true,
		"/kctl.fleet.v1.UpgradeService/UpgradeAgent":             true,
		"/kctl.controller.v1.ControllerService/UnlockKey":        true,
		"/kctl.controller.v1.ControllerService/RotateDataKey":    true,
	}
	for m, a := range controller.Policy {
		if a.Audit != changes[m] {
			t.Errorf("Policy[%s].Audit = %v, want %v", m, a.Audit, changes[m])
		}
	}
}
