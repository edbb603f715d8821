// Package backup measures `kctl cluster snapshot save` and `controller run
// --init --restore` on a large state: 100,000 audit entries and 1,000
// enrolled agents (with facts), on a real controller over mutual TLS.
//
//	go test -run '^$' -bench Backup -benchtime 1x ./bench/backup/
package backup

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/backupfile"
	"github.com/kctl-dev/kctl/internal/controller"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/schema"
)

const (
	auditEntries = 100_000
	agents       = 1_000
)

// fill writes the state through the leader, 1,000 mutations per command;
// leader returns the current leader (it may change on a loaded machine).
func fill(b *testing.B, leader func() *controller.Controller) {
	ctx := context.Background()
	apply := func(muts []*raftcmdv1.Mutation) {
		var err error
		for range 20 {
			if _, err = leader().Store().Apply(ctx, &raftcmdv1.Command{Mutations: muts}); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // a new leader being elected
		}
		b.Fatal(err)
	}
	var muts []*raftcmdv1.Mutation
	for i := range agents {
		name := fmt.Sprintf("web-%04d", i)
		facts := &agentv1.Facts{Hostname: name, Os: "linux", Arch: "amd64", DockerVersion: "27.3.1", AgentVersion: "v1.4.0"}
		for j := range 4 {
			facts.Containers = append(facts.Containers, &agentv1.ContainerFact{Name: fmt.Sprintf("app-web-%d", j), Image: "registry.example.com/app:v1", State: "running"})
		}
		muts = append(muts, schema.Agents.Put(name, &controllerv1.AgentRecord{Name: name, Serials: []string{fmt.Sprintf("%032x", i)}, CreatedUnix: time.Now().Unix(), Facts: facts}))
		if len(muts) == 100 {
			apply(muts)
			muts = nil
		}
	}
	for i := range auditEntries {
		muts = append(muts, schema.Audit.Append(&deployv1.AuditEntry{
			UnixMillis: time.Now().UnixMilli(), Operator: "operator/alice", Service: "app", Role: "web", Host: fmt.Sprintf("web-%04d", i%agents),
			Version: fmt.Sprintf("v%d", i/1000), Action: "boot app", Result: "ok", DeployId: fmt.Sprintf("d%06d", i/100),
		}))
		if len(muts) == 1000 {
			apply(muts)
			muts = nil
		}
	}
	if len(muts) > 0 {
		apply(muts)
	}
}

func BenchmarkBackup(b *testing.B) {
	tc := controllertest.NewCluster(b, 1)
	c := tc.Nodes[0].C
	fill(b, func() *controller.Controller { return c })
	dir := b.TempDir()
	path := filepath.Join(dir, "backup.kctl")
	admin := tc.AdminClient()
	for b.Loop() {
		// Save: the RPC streams the state; the client checks and writes
		// the file as kctl does.
		start := time.Now()
		var hdr *controllerv1.BackupHeader
		var body bytes.Buffer
		err := admin.CallConn(context.Background(), func(ctx context.Context, cc grpc.ClientConnInterface) error {
			body.Reset()
			st, err := controllerv1.NewBackupServiceClient(cc).SaveSnapshot(ctx, &controllerv1.SaveSnapshotRequest{})
			if err != nil {
				return err
			}
			hdr, err = backupfile.Receive(st.Recv, &body)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := backupfile.WriteFile(path, hdr, &body); err != nil {
			b.Fatal(err)
		}
		save := time.Since(start)
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}

		// Restore: verify, seed, start, record the takeover: until it serves.
		start = time.Now()
		cfg := tc.Config(0)
		cfg.KEKFile = filepath.Join(cfg.DataDir, "kek") // the sealed CA key opens with it
		cfg.DataDir, cfg.Init, cfg.Restore = filepath.Join(dir, fmt.Sprintf("restored-%d", time.Now().UnixNano())), true, path
		cfg.APIListener, _ = net.Listen("tcp", "127.0.0.1:0")
		cfg.RaftListener, _ = net.Listen("tcp", "127.0.0.1:0")
		r, err := controller.Start(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		restore := time.Since(start)
		r.Close()
		b.ReportMetric(save.Seconds(), "save-s")
		b.ReportMetric(restore.Seconds(), "restore-s")
		b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
		b.ReportMetric(float64(hdr.GetRecords()), "records")
	}
}
