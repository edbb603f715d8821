package agent

import (
	"context"

	"google.golang.org/grpc"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	fleetv1 "github.com/kctl-dev/kctl/gen/kctl/fleet/v1"
	"github.com/kctl-dev/kctl/internal/agent/selfupgrade"
	"github.com/kctl-dev/kctl/internal/blobstore"
)

// upgrade downloads the binary an AgentUpgrade names from the controller
// holding the session, and installs it (selfupgrade.Install: digest
// verified, `version` run). The caller restarts the agent once the result
// is sent. A failed download is not journaled: a redelivery tries again.
func (a *Agent) upgrade(ctx context.Context, conn *grpc.ClientConn, u *agentv1.AgentUpgrade) (*agentv1.Result, bool) {
	if !blobstore.ValidDigest(u.GetSha256()) {
		return &agentv1.Result{Error: "agent upgrade: not a SHA-256 digest"}, true
	}
	st, err := fleetv1.NewBlobServiceClient(conn).Get(ctx, &fleetv1.GetRequest{Sha256: u.GetSha256()})
	if err != nil {
		return &agentv1.Result{Error: "agent upgrade: download: " + err.Error()}, false
	}
	r := blobstore.ChunkReader(func() ([]byte, error) {
		m, err := st.Recv()
		return m.GetChunk(), err
	})
	a.log.Info("installing an upgraded agent binary", "sha256", u.GetSha256(), "bytes", u.GetSize())
	v, err := selfupgrade.Install(ctx, a.cfg.DataDir, u.GetSha256(), u.GetSize(), r)
	if err != nil {
		return &agentv1.Result{Error: "agent upgrade: " + err.Error()}, true
	}
	return &agentv1.Result{Ok: true, AgentVersion: v}, true
}
