package controller

import (
	"github.com/kctl-dev/kctl/internal/pki"
)

var (
	anyOperator = pki.Allow{Roles: []pki.Role{pki.RoleOperator}}
	admin       = pki.Allow{Roles: []pki.Role{pki.RoleOperator}, OperatorRoles: []pki.OperatorRole{pki.OperatorAdmin}}
	deployer    = pki.Allow{Roles: []pki.Role{pki.RoleOperator, pki.RoleController}, OperatorRoles: []pki.OperatorRole{pki.OperatorAdmin, pki.OperatorDeployer}}
	// deployerOnly is deployer for calls a controller never forwards.
	deployerOnly = pki.Allow{Roles: []pki.Role{pki.RoleOperator}, OperatorRoles: []pki.OperatorRole{pki.OperatorAdmin, pki.OperatorDeployer}}
	controllers  = pki.Allow{Roles: []pki.Role{pki.RoleController}}
	agents       = pki.Allow{Roles: []pki.Role{pki.RoleAgent}}
	public       = pki.Allow{Public: true}
)

// Policy says who may call every method the controller serves, the deploy
// service's included: one declarative table, consulted once per RPC by the
// Authorizer's interceptors, which deny anything not listed. Controllers are
// listed where a follower forwards a call on behalf of its caller.
var Policy = pki.Policy{
	"/kctl.controller.v1.ControllerService/Join":             public,
	"/kctl.controller.v1.ControllerService/RenewCertificate": {Roles: []pki.Role{pki.RoleAgent, pki.RoleOperator, pki.RoleController}},
	"/kctl.controller.v1.ControllerService/CreateToken":      admin,
	"/kctl.controller.v1.ControllerService/ListTokens":       admin,
	"/kctl.controller.v1.ControllerService/RevokeToken":      admin,
	"/kctl.controller.v1.ControllerService/ClusterStatus":    {Roles: []pki.Role{pki.RoleOperator, pki.RoleController}},
	"/kctl.controller.v1.ControllerService/AddController":    controllers,
	"/kctl.controller.v1.ControllerService/RemoveController": admin,
	"/kctl.controller.v1.ControllerService/ListAgents":       anyOperator,
	"/kctl.controller.v1.ControllerService/DescribeAgent":    anyOperator,
	"/kctl.controller.v1.ControllerService/RemoveAgent":      admin,
	"/kctl.controller.v1.ControllerService/ListOperators":    anyOperator,
	"/kctl.controller.v1.ControllerService/RemoveOperator":   admin,
	"/kctl.controller.v1.ControllerService/SendCommand":      deployer,
	"/kctl.controller.v1.ControllerService/GetCommand":       deployer,
	"/kctl.controller.v1.BackupService/SaveSnapshot":         admin,
	"/kctl.controller.v1.InternalService/Apply":              controllers,
	"/kctl.controller.v1.InternalService/ReadIndex":          controllers,
	"/kctl.agent.v1.SessionService/Session":                  agents,
	"/kctl.deploy.v1.DeployService/Submit":                   deployer,
	"/kctl.deploy.v1.DeployService/Cancel":                   deployer,
	"/kctl.deploy.v1.DeployService/AcquireLock":              deployer,
	"/kctl.deploy.v1.DeployService/ReleaseLock":              deployer,
	"/kctl.deploy.v1.DeployService/Versions":                 deployer,
	"/kctl.deploy.v1.DeployService/Get":                      anyOperator,
	"/kctl.deploy.v1.DeployService/List":                     anyOperator,
	"/kctl.deploy.v1.DeployService/Watch":                    anyOperator,
	"/kctl.deploy.v1.DeployService/LockStatus":               anyOperator,
	"/kctl.deploy.v1.DeployService/Audit":                    anyOperator,
	"/kctl.ops.v1.LifecycleService/Details":                  anyOperator,
	"/kctl.ops.v1.LifecycleService/Containers":               anyOperator,
	"/kctl.ops.v1.LifecycleService/Images":                   anyOperator,
	"/kctl.ops.v1.LifecycleService/Version":                  anyOperator,
	"/kctl.ops.v1.LifecycleService/Desired":                  anyOperator,
	"/kctl.ops.v1.LifecycleService/App":                      deployer,
	"/kctl.ops.v1.LifecycleService/Proxy":                    deployer,
	"/kctl.ops.v1.LifecycleService/Accessory":                deployer,
	"/kctl.ops.v1.LifecycleService/Remove":                   deployer,
	// Streams: a viewer reads logs, a deployer execs into containers, an
	// admin on the host; a controller relays to the one holding the agent.
	"/kctl.stream.v1.StreamService/Logs":       anyOperator,
	"/kctl.stream.v1.StreamService/Exec":       deployerOnly,
	"/kctl.stream.v1.StreamService/ServerExec": admin,
	"/kctl.stream.v1.RelayService/Relay":       controllers,
	"/kctl.stream.v1.TunnelService/Tunnel":     agents,
	"/grpc.health.v1.Health/Check":             public,
	"/grpc.health.v1.Health/Watch":             public,
	"/grpc.health.v1.Health/List":              public,
}
