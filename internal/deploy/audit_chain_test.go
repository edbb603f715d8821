package deploy_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/auditchain"
	"github.com/kctl-dev/kctl/internal/deploy"
	"github.com/kctl-dev/kctl/internal/raftstore"
	"github.com/kctl-dev/kctl/internal/schema"
)

// Audit with chain pages through the raw chain (each page well under gRPC's
// message limit) until more is false; the pages together are the whole
// chain, in order, and it verifies. Entries written before the chain are
// listed first and counted as legacy.
func TestService_AuditChainPages(t *testing.T) {
	s := memStore{raftstore.NewMemStore()}
	for _, who := range []string{"old-1", "old-2"} {
		v, _ := proto.Marshal(&deployv1.AuditEntry{Operator: who})
		putRecords(t, s, &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: "audit", Value: v}}})
	}
	detail := strings.Repeat("x", 4<<10)
	const n = 600 // 600 × 4 KiB: more than one page
	for i := 0; i < n; i += 50 {
		var muts []*raftcmdv1.Mutation
		for range 50 {
			muts = append(muts, schema.Audit.Append(&deployv1.AuditEntry{Operator: "alice", Action: "x", Detail: detail}))
		}
		putRecords(t, s, muts...)
	}
	svc := &deploy.Service{Store: s}
	ctx := context.Background()
	var links []auditchain.Link
	var after uint64
	pages := 0
	for {
		resp, err := svc.Audit(ctx, &deployv1.AuditRequest{Chain: true, AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if resp.GetLegacy() != 2 {
			t.Errorf("legacy = %d, want 2", resp.GetLegacy())
		}
		for _, l := range resp.GetLinks() {
			links = append(links, auditchain.Link{Seq: l.GetSeq(), Prev: l.GetPrevHash(), Value: l.GetEntry(), Hash: l.GetHash()})
		}
		if !resp.GetMore() {
			break
		}
		after = links[len(links)-1].Seq
	}
	if pages < 2 || len(links) != n {
		t.Fatalf("%d links in %d pages, want %d in more than one", len(links), pages, n)
	}
	if err := auditchain.Verify(links, nil, nil); err != nil {
		t.Errorf("Verify(pages) = %v", err)
	}
	all, err := svc.Audit(ctx, &deployv1.AuditRequest{})
	if err != nil || len(all.GetEntries()) != n+2 {
		t.Fatalf("Audit = %d entries, %v; want %d", len(all.GetEntries()), err, n+2)
	}
	if e := all.GetEntries(); e[0].GetOperator() != "old-1" || e[0].GetSeq() != 0 || e[2].GetSeq() != 1 || e[n+1].GetSeq() != n {
		t.Errorf("Audit = %v, %v, ..., %v; want the legacy entries first, then the chain", e[0], e[2], e[n+1])
	}
}
