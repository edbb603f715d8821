package kctl

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/auditchain"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/kctl/explain"
)

// auditArgs are audit's filters.
type auditArgs struct {
	service, dest, operator, host string
	since                         string
	limit                         uint32
	output                        string
}

func newAuditCmd(g *globals) *cobra.Command {
	var a auditArgs
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Query the audit history of every action, on any controller",
		Long: "Query the audit history of every action that changed anything: who (name, role, address), what (the call and a\n" +
			"summary without secrets), the result. -o jsonl prints one JSON object a line, for shipping to a SIEM\n" +
			"(kctl audit -o jsonl --since 1h). `kctl audit verify` checks the hash chain.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "table" && a.output != "json" && a.output != "jsonl" {
				return fmt.Errorf("-o must be table, json or jsonl, not %q", a.output)
			}
			in := &deployv1.AuditRequest{Service: a.service, Destination: a.dest, Operator: a.operator, Host: a.host, Limit: a.limit}
			if a.since != "" {
				t, err := parseSince(a.since, time.Now())
				if err != nil {
					return err
				}
				in.SinceUnixMillis = t.UnixMilli()
			}
			return g.deployClient(cmd.Context(), func(ctx context.Context, c deployv1.DeployServiceClient) error {
				resp, err := c.Audit(ctx, in)
				if err != nil {
					return err
				}
				return printAudit(cmd, a.output, resp.GetEntries())
			})
		},
	}
	cmd.Flags().StringVar(&a.service, "service", "", "only this service")
	cmd.Flags().StringVarP(&a.dest, "destination", "d", "", "only this destination")
	cmd.Flags().StringVar(&a.operator, "operator", "", "only this operator")
	cmd.Flags().StringVar(&a.host, "host", "", "only this host")
	cmd.Flags().StringVar(&a.since, "since", "", "only entries newer than this: a duration (24h) or a time (2026-01-02T15:04:05Z)")
	cmd.Flags().Uint32Var(&a.limit, "limit", 0, "at most this many entries (newest)")
	cmd.Flags().StringVarP(&a.output, "output", "o", "table", "table, json or jsonl (one entry a line)")
	cmd.AddCommand(newAuditVerifyCmd(g))
	return cmd
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: a duration back from now must be positive", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q is neither a duration (24h) nor an RFC 3339 time (2026-01-02T15:04:05Z)", s)
}

// auditJSON is one entry in -o json and jsonl.
type auditJSON struct {
	Seq         uint64 `json:"seq,omitempty"`
	Time        string `json:"time"`
	Operator    string `json:"operator"`
	CallerRole  string `json:"caller_role,omitempty"`
	Address     string `json:"address,omitempty"`
	Method      string `json:"method,omitempty"`
	Service     string `json:"service"`
	Destination string `json:"destination"`
	Role        string `json:"role"`
	Host        string `json:"host"`
	Version     string `json:"version"`
	Action      string `json:"action"`
	Result      string `json:"result"`
	Deploy      string `json:"deploy"`
	Detail      string `json:"detail"`
	PrevHash    string `json:"prev_hash,omitempty"`
	Hash        string `json:"hash,omitempty"`
}

func auditJSONOf(e *deployv1.AuditEntry) auditJSON {
	return auditJSON{
		Seq: e.GetSeq(), Time: time.UnixMilli(e.GetUnixMillis()).UTC().Format(time.RFC3339Nano), Operator: e.GetOperator(),
		CallerRole: e.GetCallerRole(), Address: e.GetAddress(), Method: e.GetMethod(),
		Service: e.GetService(), Destination: e.GetDestination(), Role: e.GetRole(), Host: e.GetHost(),
		Version: e.GetVersion(), Action: e.GetAction(), Result: e.GetResult(), Deploy: e.GetDeployId(),
		Detail: e.GetDetail(), PrevHash: hex.EncodeToString(e.GetPrevHash()), Hash: hex.EncodeToString(e.GetHash()),
	}
}

func printAudit(cmd *cobra.Command, o string, entries []*deployv1.AuditEntry) error {
	switch o {
	case "json":
		list := []auditJSON{}
		for _, e := range entries {
			list = append(list, auditJSONOf(e))
		}
		return printJSON(cmd.OutOrStdout(), list)
	case "jsonl":
		enc := json.NewEncoder(cmd.OutOrStdout())
		for _, e := range entries {
			if err := enc.Encode(auditJSONOf(e)); err != nil {
				return err
			}
		}
		return nil
	}
	var rows [][]string
	for _, e := range entries {
		who := e.GetOperator()
		if r := e.GetCallerRole(); r != "" {
			who += " (" + r + ")"
		}
		rows = append(rows, []string{time.UnixMilli(e.GetUnixMillis()).UTC().Format(time.RFC3339), who,
			e.GetService(), e.GetDestination(), e.GetRole(), e.GetHost(), e.GetVersion(), e.GetAction(), e.GetResult()})
	}
	return printTable(cmd.OutOrStdout(), []string{"TIME", "OPERATOR", "SERVICE", "DEST", "ROLE", "HOST", "VERSION", "ACTION", "RESULT"}, rows)
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var controller string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit history's hash chain; name the first entry that does not match",
		Long: "Fetch the raw audit chain from a controller (--controller ADDR, else any) and check it here: every entry's\n" +
			"hash covers its content, sequence number and the hash of the entry before it, back to the genesis or to the\n" +
			"checkpoint retention left, whose signature is checked against the cluster CA in your credentials.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.verifyAudit(cmd, controller)
		},
	}
	cmd.Flags().StringVar(&controller, "controller", "", "ask this controller (API address) only")
	return cmd
}

func (g *globals) verifyAudit(cmd *cobra.Command, controller string) error {
	path := g.credentialsPath()
	f, err := ctlclient.LoadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read credentials %s: %w", path, err)
	}
	creds, err := f.Credentials()
	if err != nil {
		return fmt.Errorf("credentials file %s is unusable: %w", path, err)
	}
	addrs := f.Controllers
	if controller != "" {
		addrs = []string{controller}
	}
	cl := ctlclient.NewClient(creds, addrs, g.timeout)
	var resp *deployv1.AuditResponse
	ctx, cancel := context.WithTimeout(cmd.Context(), g.deadline)
	defer cancel()
	err = cl.CallConn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		var err error
		resp, err = deployv1.NewDeployServiceClient(cc).Audit(ctx, &deployv1.AuditRequest{Chain: true})
		return err
	})
	if err != nil {
		return explain.Explain(err)
	}
	key, _ := creds.CACert().PublicKey.(*ecdsa.PublicKey)
	if key == nil {
		return errors.New("the cluster CA's key is not ECDSA: cannot check the checkpoint's signature")
	}
	links := make([]auditchain.Link, len(resp.GetLinks()))
	for i, l := range resp.GetLinks() {
		links[i] = auditchain.Link{Seq: l.GetSeq(), Prev: l.GetPrevHash(), Value: l.GetEntry(), Hash: l.GetHash()}
	}
	var cp *auditchain.Checkpoint
	if c := resp.GetCheckpoint(); c != nil {
		cp = &auditchain.Checkpoint{Seq: c.GetSeq(), Hash: c.GetHash(), Dropped: c.GetDropped(), UnixMillis: c.GetUnixMillis(), Signature: c.GetSignature()}
	}
	if err := auditchain.Verify(links, cp, key); err != nil {
		var be *auditchain.BrokenError
		if errors.As(err, &be) && be.Seq > 0 {
			for _, l := range resp.GetLinks() {
				if l.GetSeq() == be.Seq {
					e := new(deployv1.AuditEntry)
					if proto.Unmarshal(l.GetEntry(), e) == nil {
						return fmt.Errorf("%w\n  entry %d as stored: %s %s %s %s", err, be.Seq,
							time.UnixMilli(e.GetUnixMillis()).UTC().Format(time.RFC3339), e.GetOperator(), e.GetAction(), e.GetResult())
					}
				}
			}
		}
		return err
	}
	out := cmd.OutOrStdout()
	var b strings.Builder
	switch n := len(links); {
	case n == 0:
		b.WriteString("audit chain verified: empty")
	default:
		fmt.Fprintf(&b, "audit chain verified: %d entries (%d to %d)", n, links[0].Seq, links[n-1].Seq)
	}
	if cp != nil {
		fmt.Fprintf(&b, "; %d older entries dropped by retention, anchored by a checkpoint signed by the cluster CA (%s)",
			cp.Dropped, time.UnixMilli(cp.UnixMillis).UTC().Format(time.RFC3339))
	}
	if n := resp.GetLegacy(); n > 0 {
		fmt.Fprintf(&b, "; %d entries from before the chain are not covered", n)
	}
	fmt.Fprintln(out, b.String())
	return nil
}
