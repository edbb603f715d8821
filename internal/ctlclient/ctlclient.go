// Package ctlclient is the client side of the controller API shared by kctl,
// the agent and joining controllers: joining with a token (pinning the CA),
// the operator credentials file, and calling whichever controller answers.
package ctlclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	"github.com/kctl-dev/kctl/internal/pki"
)

var (
	// ErrTokenRejected is returned when a controller refuses a join token or
	// presents a CA that does not match the token's digest.
	ErrTokenRejected = errors.New("join token rejected")
	// ErrUnreachable is returned when no controller answered.
	ErrUnreachable = errors.New("no controller reachable")
	// ErrOtherCluster is returned when a controller's certificate is not
	// from the CA in the credentials.
	ErrOtherCluster = errors.New("controller belongs to another cluster")
)

// ControllersHeader is the response header in which controllers announce
// every controller's API address, so clients learn addresses they were not
// given.
const ControllersHeader = "kctl-controllers"

// DefaultTimeout bounds one attempt to reach one controller.
const DefaultTimeout = 5 * time.Second

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

// File is an operator credentials file (YAML, 0600): the controller
// addresses, the CA certificate, and the operator's certificate and key.
type File struct {
	ClusterID   string   `yaml:"cluster_id"`
	Name        string   `yaml:"name"`
	Role        string   `yaml:"role"`
	Controllers []string `yaml:"controllers"`
	CA          string   `yaml:"ca"`
	Cert        string   `yaml:"cert"`
	Key         string   `yaml:"key"`
}

// LoadFile reads a credentials file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s is not a kctl credentials file: %w", path, err)
	}
	if f.CA == "" || f.Cert == "" || f.Key == "" || len(f.Controllers) == 0 {
		return nil, fmt.Errorf("%s is not a kctl credentials file: it lacks ca, cert, key or controllers", path)
	}
	return &f, nil
}

// Marshal encodes the file.
func (f *File) Marshal() ([]byte, error) { return yaml.Marshal(f) }

// Save writes the file atomically with mode 0600.
func (f *File) Save(path string) error {
	b, err := f.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return WriteFileAtomic(path, b, 0o600)
}

// Credentials loads the file's certificate, key and CA.
func (f *File) Credentials() (*pki.Credentials, error) {
	return pki.NewCredentials([]byte(f.Cert), []byte(f.Key), []byte(f.CA))
}

// WriteFileAtomic writes through a temporary file and a rename, so a crash
// never leaves a truncated file.
func WriteFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

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
// anything but Unavailable (or a TLS failure). The error of the last attempt
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
		if strings.Contains(msg, "unknown authority") || strings.Contains(msg, pki.ErrUntrusted.Error()) || strings.Contains(msg, pki.ErrWrongCluster.Error()) {
			return fmt.Errorf("%w: %s does not present a certificate from this credentials file's CA (use the credentials of the cluster it belongs to, or kctl login again)", ErrOtherCluster, addr)
		}
		if st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded {
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
		return err
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(c.creds.ClientTLS(pki.RoleController))),
		grpc.WithUnaryInterceptor(learn))
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
	return fn(ctx, conn)
}

func (c *Client) learn(addrs []string) {
	changed := false
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a != "" && !slices.Contains(c.addrs, a) {
			c.addrs = append(c.addrs, a)
			changed = true
		}
	}
	if changed && c.Learned != nil {
		c.Learned(slices.Clone(c.addrs))
	}
}
