package controller_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/pki"
)

// Bad input to the admin API is refused with the right code and a message
// that says what to do, and changes nothing.
func TestAPI_BadInputIsRefusedClearly(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	enrolled(t, tc, controllerv1.Role_ROLE_AGENT, "web-1", "") // enrolled, not running
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cc := controllerv1.NewControllerServiceClient(rawConn(t, tc.Nodes[0].API, pair(t, []byte(tc.Admin.Cert), []byte(tc.Admin.Key))))
	other := controller.NewCommandID("web-2")
	cases := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"CreateToken without a role", func() error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{})
			return err
		}, codes.InvalidArgument, "--role must be"},
		{"operator token without a name", func() error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_OPERATOR})
			return err
		}, codes.InvalidArgument, "needs --name"},
		{"operator token with a bad operator role", func() error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_OPERATOR, Name: "x", OperatorRole: "root"})
			return err
		}, codes.InvalidArgument, "admin, deployer or viewer"},
		{"operator token for the existing admin", func() error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_OPERATOR, Name: "admin"})
			return err
		}, codes.AlreadyExists, "kctl operators remove"},
		{"operator role on an agent token", func() error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT, OperatorRole: "admin"})
			return err
		}, codes.InvalidArgument, "only for operator tokens"},
		{"token with a bad name", func() error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT, Name: "no spaces"})
			return err
		}, codes.InvalidArgument, "not a valid name"},
		{"token with a negative TTL", func() error {
			_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT, TtlSeconds: -5})
			return err
		}, codes.InvalidArgument, "--ttl must be positive"},
		{"RevokeToken of an unknown token", func() error {
			_, err := cc.RevokeToken(ctx, &controllerv1.RevokeTokenRequest{Id: "nope"})
			return err
		}, codes.NotFound, "kctl token list"},
		{"Join with a malformed token", func() error {
			_, err := cc.Join(ctx, &controllerv1.JoinRequest{Token: "garbage"})
			return err
		}, codes.InvalidArgument, ""},
		{"Join of a name already taken", func() error {
			tok := mustToken(t, tc, controllerv1.Role_ROLE_AGENT, "", "")
			key, _ := pki.NewKey()
			_, err := cc.Join(ctx, &controllerv1.JoinRequest{Token: tok.String(), CsrPem: mustCSR(t, key), Name: "web-1"})
			return err
		}, codes.AlreadyExists, "already exists"},
		{"Join under another name than the token's", func() error {
			tok := mustToken(t, tc, controllerv1.Role_ROLE_AGENT, "db-1", "")
			key, _ := pki.NewKey()
			_, err := cc.Join(ctx, &controllerv1.JoinRequest{Token: tok.String(), CsrPem: mustCSR(t, key), Name: "db-2"})
			return err
		}, codes.PermissionDenied, `this token is for "db-1"`},
		{"controller Join without addresses", func() error {
			tok := mustToken(t, tc, controllerv1.Role_ROLE_CONTROLLER, "", "")
			key, _ := pki.NewKey()
			csr, _ := pki.NewCSR(key, pki.Identity{Role: pki.RoleController, Name: "c9"})
			_, err := cc.Join(ctx, &controllerv1.JoinRequest{Token: tok.String(), CsrPem: csr, Name: "c9"})
			return err
		}, codes.InvalidArgument, "API and Raft addresses"},
		{"agent Join with a controller token", func() error {
			tok := mustToken(t, tc, controllerv1.Role_ROLE_CONTROLLER, "", "")
			key, _ := pki.NewKey()
			_, err := cc.Join(ctx, &controllerv1.JoinRequest{Token: tok.String(), CsrPem: mustCSR(t, key), Name: "web-9"})
			return err
		}, codes.FailedPrecondition, "this is a controller token, but an agent asks to join with it"},
		{"Join with a bad CSR", func() error {
			tok := mustToken(t, tc, controllerv1.Role_ROLE_AGENT, "", "")
			_, err := cc.Join(ctx, &controllerv1.JoinRequest{Token: tok.String(), CsrPem: []byte("not a csr"), Name: "web-9"})
			return err
		}, codes.InvalidArgument, ""},
		{"RenewCertificate with a bad CSR", func() error {
			_, err := cc.RenewCertificate(ctx, &controllerv1.RenewCertificateRequest{CsrPem: []byte("x")})
			return err
		}, codes.InvalidArgument, ""},
		{"RemoveOperator of the last admin", func() error {
			_, err := cc.RemoveOperator(ctx, &controllerv1.RemoveOperatorRequest{Name: "admin"})
			return err
		}, codes.FailedPrecondition, "last admin"},
		{"RemoveOperator of nobody", func() error {
			_, err := cc.RemoveOperator(ctx, &controllerv1.RemoveOperatorRequest{Name: "ghost"})
			return err
		}, codes.NotFound, "kctl operators"},
		{"RemoveAgent of nobody", func() error {
			_, err := cc.RemoveAgent(ctx, &controllerv1.RemoveAgentRequest{Name: "ghost"})
			return err
		}, codes.NotFound, "kctl agents"},
		{"DescribeAgent of nobody", func() error {
			_, err := cc.DescribeAgent(ctx, &controllerv1.DescribeAgentRequest{Name: "ghost"})
			return err
		}, codes.NotFound, "kctl agents"},
		{"RemoveController of nobody", func() error {
			_, err := cc.RemoveController(ctx, &controllerv1.RemoveControllerRequest{Name: "ghost"})
			return err
		}, codes.NotFound, "kctl cluster status"},
		{"RemoveController of the last one", func() error {
			_, err := cc.RemoveController(ctx, &controllerv1.RemoveControllerRequest{Name: "c1"})
			return err
		}, codes.FailedPrecondition, "last controller"},
		{"SendCommand without an operation", func() error {
			_, err := cc.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1"})
			return err
		}, codes.InvalidArgument, "no operation"},
		{"SendCommand to an unknown agent", func() error {
			_, err := cc.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "ghost", Operation: noop("x")})
			return err
		}, codes.NotFound, "kctl agents"},
		{"SendCommand with a malformed id", func() error {
			_, err := cc.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1", Id: "nope", Operation: noop("x")})
			return err
		}, codes.InvalidArgument, "not a command id"},
		{"SendCommand with another agent's id", func() error {
			_, err := cc.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1", Id: other, Operation: noop("x")})
			return err
		}, codes.InvalidArgument, "is not for agent"},
		{"SendCommand waiting on a disconnected agent", func() error {
			wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer wcancel()
			_, err := cc.SendCommand(wctx, &controllerv1.SendCommandRequest{Agent: "web-1", Operation: noop("x"), Wait: true})
			return err
		}, codes.DeadlineExceeded, ""},
		{"GetCommand of an unknown command", func() error {
			_, err := cc.GetCommand(ctx, &controllerv1.GetCommandRequest{Id: other})
			return err
		}, codes.NotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantCode(t, c.name, c.call(), c.code, c.msg) })
	}
	// A retried SendCommand with the same id records one command.
	id := controller.NewCommandID("web-1")
	for range 2 {
		r, err := cc.SendCommand(ctx, &controllerv1.SendCommandRequest{Agent: "web-1", Id: id, Operation: noop("once")})
		if err != nil || r.GetCommand().GetId() != id {
			t.Fatalf("SendCommand(id %s) = %v, %v", id, r, err)
		}
	}
	ops, err := cc.ListOperators(ctx, &controllerv1.ListOperatorsRequest{})
	if err != nil || len(ops.GetOperators()) != 1 {
		t.Errorf("ListOperators = %v, %v; want the admin alone (nothing was created)", ops, err)
	}
}
