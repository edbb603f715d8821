package ctlclient

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/pki"
)

// Join calls ControllerService.Join on the first controller that answers,
// pinning the CA named by the token. Errors wrap ErrTokenRejected (the token
// or the CA digest did not match: do not try others) or ErrUnreachable.
func Join(ctx context.Context, addrs []string, tok pki.Token, req *controllerv1.JoinRequest, timeout time.Duration) (*controllerv1.JoinResponse, error) {
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	var errs []string
	for _, addr := range addrs {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := joinOne(cctx, addr, tok, req)
		cancel()
		if err == nil {
			if _, err := pki.VerifyCADigest(resp.GetCaPem(), tok.CADigest); err != nil {
				return nil, fmt.Errorf("%w: %s returned a CA that does not match the token: %v", ErrTokenRejected, addr, err)
			}
			return resp, nil
		}
		st, _ := status.FromError(err)
		if strings.Contains(err.Error(), pki.ErrCADigestMismatch.Error()) || strings.Contains(st.Message(), "CA digest") {
			return nil, fmt.Errorf("%w: %s presents a CA that does not match the token's digest: it belongs to another cluster or is an impostor (check the address and the token)", ErrTokenRejected, addr)
		}
		switch st.Code() {
		case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.AlreadyExists, codes.FailedPrecondition, codes.NotFound:
			return nil, fmt.Errorf("%w by %s: %s", ErrTokenRejected, addr, strings.TrimPrefix(st.Message(), "controller: "))
		}
		errs = append(errs, fmt.Sprintf("%s: %s", addr, shortMsg(st)))
	}
	return nil, fmt.Errorf("%w (%s): check the address and that a controller runs there", ErrUnreachable, strings.Join(errs, "; "))
}

func joinOne(ctx context.Context, addr string, tok pki.Token, req *controllerv1.JoinRequest) (*controllerv1.JoinResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(pki.PinnedClientTLS(tok.CADigest))))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := waitConnect(ctx, conn); err != nil {
		return nil, err
	}
	// In TRANSIENT_FAILURE the call fails at once with the reason (a CA
	// digest mismatch, a refused connection).
	return controllerv1.NewControllerServiceClient(conn).Join(ctx, req)
}
