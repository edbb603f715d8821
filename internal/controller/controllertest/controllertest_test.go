package controllertest_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/pki"
)

func TestCluster_OperatorClientHasItsRole(t *testing.T) {
	tc := controllertest.NewCluster(t, 1)
	viewer := tc.OperatorClient("vera", pki.OperatorViewer)
	ctx := context.Background()
	if err := viewer.Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.ListAgents(ctx, &controllerv1.ListAgentsRequest{})
		return err
	}); err != nil {
		t.Errorf("viewer ListAgents = %v, want nil", err)
	}
	err := viewer.Call(ctx, func(ctx context.Context, cc controllerv1.ControllerServiceClient) error {
		_, err := cc.CreateToken(ctx, &controllerv1.CreateTokenRequest{Role: controllerv1.Role_ROLE_AGENT})
		return err
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("viewer CreateToken = %v, want PermissionDenied", err)
	}
	if l := tc.Leader(); l != 0 {
		t.Errorf("Leader() = %d, want 0 (the only node)", l)
	}
}
