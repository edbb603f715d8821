package ctlclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/apierr"
	"github.com/kctl-dev/kctl/internal/grpcbuf"
	"github.com/kctl-dev/kctl/internal/pki"
)

// Client calls the controller API on whichever controller answers, trying
// each address in turn (starting with the last one that worked), and learns
// the addresses controllers announce.
type Client struct {
	creds   *pki.Credentials
	addrs   []string
	timeout time.Duration
	// Learned, if set, is called with the full address list when a
	// controller announces addresses the client did not know.
	Learned func(addrs []string)
	// Renewed, if set, turns on renewal: after a call that succeeded, the
	// client renews its certificate when it is due (pki.NeedsRenewal) or
	// the controller announced CA trust other than the credentials' (a CA
	// rotation), and calls Renewed with the new certificate, key and CA
	// bundle to save them. A failed renewal is only reported to Warn.
	Renewed func(certPEM, keyPEM, caPEM []byte) error
	// Warn, if set, receives a renewal failure.
	Warn func(err error)
	// Now is the clock for renewal; nil means time.Now.
	Now func() time.Time

	serverTrust string // the last CATrustHeader seen
	renewing    bool
}

// NewClient returns a client for the given controllers.
func NewClient(creds *pki.Credentials, addrs []string, timeout time.Duration) *Client {
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Client{creds: creds, addrs: slices.Clone(addrs), timeout: timeout}
}

// Addrs returns the addresses the client knows.
func (c *Client) Addrs() []string { return slices.Clone(c.addrs) }

// Call runs fn against one controller after another until one answers with
// anything but Unavailable without a typed detail (or a TLS failure). The error of the last attempt
// is explained in one line.
func (c *Client) Call(ctx context.Context, fn func(ctx context.Context, cc controllerv1.ControllerServiceClient) error) error {
	return c.CallConn(ctx, func(ctx context.Context, conn grpc.ClientConnInterface) error {
		return fn(ctx, controllerv1.NewControllerServiceClient(conn))
	})
}

// CallConn is Call for any service the controllers serve.
func (c *Client) CallConn(ctx context.Context, fn func(ctx context.Context, conn grpc.ClientConnInterface) error) error {
	var errs []string
	for i := 0; i < len(c.addrs); i++ {
		addr := c.addrs[i]
		err := c.callOne(ctx, addr, fn)
		if err == nil {
			if i > 0 { // remember the one that worked
				c.addrs = append([]string{addr}, slices.Delete(slices.Clone(c.addrs), i, i+1)...)
			}
			return nil
		}
		st, _ := status.FromError(err)
		msg := st.Message()
		if strings.Contains(msg, pki.ErrCARotated.Error()) {
			return fmt.Errorf("%w: %s", ErrCARotated, pki.RotatedHint)
		}
		if strings.Contains(msg, "unknown authority") || strings.Contains(msg, pki.ErrUntrusted.Error()) || strings.Contains(msg, pki.ErrWrongCluster.Error()) {
			return fmt.Errorf("%w: %s does not present a certificate from this credentials file's CA (use the credentials of the cluster it belongs to, or kctl login again)", ErrOtherCluster, addr)
		}
		// A typed answer (a host's agent is not connected) came from a
		// controller that runs: show it rather than try the next one.
		if st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded || apierr.IsAnswer(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		errs = append(errs, fmt.Sprintf("%s: %s", addr, shortMsg(st)))
	}
	return fmt.Errorf("%w (%s): check that a controller runs there, or pass other addresses in the credentials file", ErrUnreachable, strings.Join(errs, "; "))
}

func (c *Client) callOne(ctx context.Context, addr string, fn func(context.Context, grpc.ClientConnInterface) error) error {
	learn := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var md metadata.MD
		err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&md))...)
		if vals := md.Get(ControllersHeader); len(vals) > 0 {
			c.learn(strings.Split(vals[0], ","))
		}
		if vals := md.Get(CATrustHeader); len(vals) > 0 {
			c.serverTrust = vals[0]
		}
		return err
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(c.creds.ClientTLS(pki.RoleController))),
		grpc.WithUnaryInterceptor(learn),
		grpcbuf.DialOption(),
		grpc.WithReadBufferSize(grpcbuf.ReadBuffer), grpc.WithWriteBufferSize(grpcbuf.WriteBuffer), grpc.WithSharedWriteBuffer(true))
	if err != nil {
		return err
	}
	defer conn.Close()
	// Bound connecting; the call itself gets the caller's context. In
	// TRANSIENT_FAILURE the call fails at once with the reason.
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := waitConnect(cctx, conn); err != nil {
		return status.Errorf(codes.DeadlineExceeded, "timed out connecting after %s", c.timeout)
	}
	if err := fn(ctx, conn); err != nil {
		return err
	}
	c.maybeRenew(ctx, conn)
	return nil
}

// maybeRenew renews the certificate over conn when it is due or the
// cluster's CA trust is not the credentials'.
func (c *Client) maybeRenew(ctx context.Context, conn *grpc.ClientConn) {
	if c.Renewed == nil || c.renewing {
		return
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	rotated := c.serverTrust != "" && (c.serverTrust != c.creds.TrustID() || !c.creds.OnCurrentCA())
	if !rotated && !pki.NeedsRenewal(c.creds.Leaf(), now()) {
		return
	}
	c.renewing = true
	defer func() { c.renewing = false }()
	if err := c.renew(ctx, conn); err != nil && c.Warn != nil {
		c.Warn(fmt.Errorf("renewing the certificate failed (kctl tries again on the next command): %w", err))
	}
}

func (c *Client) renew(ctx context.Context, conn *grpc.ClientConn) error {
	keyPEM, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(keyPEM, c.creds.Identity())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := controllerv1.NewControllerServiceClient(conn).RenewCertificate(ctx, &controllerv1.RenewCertificateRequest{CsrPem: csr})
	if err != nil {
		return err
	}
	if err := c.creds.UpdateTrust(resp.GetCertPem(), keyPEM, resp.GetCaPem()); err != nil {
		return err
	}
	return c.Renewed(resp.GetCertPem(), keyPEM, resp.GetCaPem())
}

func (c *Client) learn(addrs []string) {
	merged := MergeAddrs(c.addrs, addrs)
	if len(merged) == len(c.addrs) {
		return
	}
	c.addrs = merged
	if c.Learned != nil {
		c.Learned(slices.Clone(c.addrs))
	}
}

// waitConnect waits until conn is ready or has failed once, bounded by ctx.
func waitConnect(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready && s != connectivity.TransientFailure; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			return status.Error(codes.DeadlineExceeded, "timed out connecting")
		}
	}
	return nil
}

func shortMsg(st *status.Status) string {
	m := st.Message()
	if st.Code() == codes.DeadlineExceeded || strings.Contains(m, "context deadline exceeded") {
		return "timed out"
	}
	if i := strings.LastIndex(m, ": "); i >= 0 && strings.Contains(m, "connection error") {
		return m[i+2:]
	}
	return m
}

// Credentials returns the client's credentials (updated by a renewal).
func (c *Client) Credentials() *pki.Credentials { return c.creds }
