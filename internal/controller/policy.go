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

// audited marks a method that changes something: the audit interceptor
// (audit.go) records every call of it.
func audited(a pki.Allow) pki.Allow {
	a.Audit = true
	return a
}

// Policy says who may call every method the controller serves, the deploy
// service's included: one declarative table, consulted once per RPC by the
// Authorizer's interceptors, which deny anything not listed; a method that
// changes anything is audited(...). Controllers are
// listed where a follower forwards a call on behalf of its caller.
var Policy = pki.Policy{
	"/kctl.controller.v1.ControllerService/Join":             audited(public),
	"/kctl.controller.v1.ControllerService/RenewCertificate": {Roles: []pki.Role{pki.RoleAgent, pki.RoleOperator, pki.RoleController}, Audit: true},
	"/kctl.controller.v1.ControllerService/CreateToken":      audited(admin),
	"/kctl.controller.v1.ControllerService/ListTokens":       admin,
	"/kctl.controller.v1.ControllerService/RevokeToken":      audited(admin),
	"/kctl.controller.v1.ControllerService/ClusterStatus":    {Roles: []pki.Role{pki.RoleOperator, pki.RoleController}},
	"/kctl.controller.v1.ControllerService/AddController":    audited(controllers),
	"/kctl.controller.v1.ControllerService/RemoveController": audited(admin),
	"/kctl.controller.v1.ControllerService/ListAgents":       anyOperator,
	"/kctl.controller.v1.ControllerService/DescribeAgent":    anyOperator,
	"/kctl.controller.v1.ControllerService/RemoveAgent":      audited(admin),
	"/kctl.controller.v1.ControllerService/ListOperators":    anyOperator,
	"/kctl.controller.v1.ControllerService/RemoveOperator":   audited(admin),
	"/kctl.controller.v1.ControllerService/Unlock":           audited(admin),
	// UnlockKey shows the unlock key (and rotates it): audited even when
	// it only shows it.
	"/kctl.controller.v1.ControllerService/UnlockKey":     audited(admin),
	"/kctl.controller.v1.ControllerService/RotateDataKey": audited(admin),
	"/kctl.controller.v1.ControllerService/RotateCA":      audited(admin),
	"/kctl.controller.v1.ControllerService/CAStatus":      {Roles: []pki.Role{pki.RoleOperator}},
	// SendCommand runs any agent operation outside any deploy and past
	// the deploy lock: a debugging tool, for admins. kctl uses the typed
	// calls below.
	"/kctl.controller.v1.ControllerService/SendCommand": audited(admin),
	"/kctl.controller.v1.ControllerService/GetCommand":  deployer,
	"/kctl.controller.v1.ControllerService/PingAgent":   anyOperator,
	"/kctl.controller.v1.BackupService/SaveSnapshot":    audited(admin),
	"/kctl.controller.v1.ControllerService/PullImage":   audited(deployerOnly),
	"/kctl.controller.v1.ControllerService/Prune":       audited(deployerOnly),
	"/kctl.controller.v1.InternalService/Apply":         controllers,
	"/kctl.controller.v1.InternalService/ReadIndex":     controllers,
	"/kctl.controller.v1.InternalService/NodeStatus":    controllers,
	"/kctl.controller.v1.InternalService/WaitApplied":   controllers,
	"/kctl.controller.v1.InternalService/ReceiveKEK":    controllers,
	"/kctl.agent.v1.SessionService/Session":             agents,
	"/kctl.deploy.v1.DeployService/Submit":              audited(deployer),
	"/kctl.deploy.v1.DeployService/Cancel":              audited(deployer),
	"/kctl.deploy.v1.DeployService/AcquireLock":         audited(deployer),
	"/kctl.deploy.v1.DeployService/ReleaseLock":         audited(deployer),
	"/kctl.deploy.v1.DeployService/Versions":            deployer,
	"/kctl.deploy.v1.DeployService/Get":                 anyOperator,
	"/kctl.deploy.v1.DeployService/List":                anyOperator,
	"/kctl.deploy.v1.DeployService/Watch":               anyOperator,
	"/kctl.deploy.v1.DeployService/LockStatus":          anyOperator,
	"/kctl.deploy.v1.DeployService/Audit":               anyOperator,
	"/kctl.ops.v1.LifecycleService/Details":             anyOperator,
	"/kctl.ops.v1.LifecycleService/Containers":          anyOperator,
	"/kctl.ops.v1.LifecycleService/Images":              anyOperator,
	"/kctl.ops.v1.LifecycleService/Version":             anyOperator,
	"/kctl.ops.v1.LifecycleService/Desired":             anyOperator,
	"/kctl.ops.v1.LifecycleService/App":                 audited(deployer),
	"/kctl.ops.v1.LifecycleService/Proxy":               audited(deployer),
	"/kctl.ops.v1.LifecycleService/Accessory":           audited(deployer),
	"/kctl.ops.v1.LifecycleService/Remove":              audited(deployer),
	// Blobs: admins upload agent binaries, controllers copy them to each
	// other, agents download the one they are told to install. The
	// handlers write the entries of uploads and upgrades themselves.
	"/kctl.fleet.v1.BlobService/Put":             audited(pki.Allow{Roles: []pki.Role{pki.RoleOperator, pki.RoleController}, OperatorRoles: []pki.OperatorRole{pki.OperatorAdmin}}),
	"/kctl.fleet.v1.BlobService/Get":             {Roles: []pki.Role{pki.RoleAgent, pki.RoleController}},
	"/kctl.fleet.v1.UpgradeService/UpgradeAgent": audited(admin),
	// Streams: a viewer reads logs, a deployer execs into containers, an
	// admin on the host; a controller relays to the one holding the agent.
	"/kctl.stream.v1.StreamService/Logs":       anyOperator,
	"/kctl.stream.v1.StreamService/Exec":       audited(deployerOnly),
	"/kctl.stream.v1.StreamService/ServerExec": audited(admin),
	"/kctl.stream.v1.RelayService/Relay":       controllers,
	"/kctl.stream.v1.TunnelService/Tunnel":     agents,
	"/grpc.health.v1.Health/Check":             public,
	"/grpc.health.v1.Health/Watch":             public,
	"/grpc.health.v1.Health/List":              public,
}
