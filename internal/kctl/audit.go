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

// auditJSON is one entry in -o json and jsonl: every value a string (seq
// too), as scripts reading `kctl audit -o json` expect.
type auditJSON struct {
	Seq         uint64 `json:"seq,omitempty,string"`
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
		Long: "Fetch the raw audit chain from every controller (or --controller ADDR only) and check it here: every entry's\n" +
			"hash covers its content, sequence number and the hash of the entry before it, back to the genesis or to the\n" +
			"checkpoint retention left, whose signature is checked against the cluster CA in your credentials; and every\n" +
			"controller's copy must agree with the others' (a copy rebuilt from an edited Raft log shows there).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.verifyAudit(cmd, controller)
		},
	}
	cmd.Flags().StringVar(&controller, "controller", "", "ask this controller (API address) only")
	return cmd
}

// auditCopy is one controller's copy of the audit chain.
type auditCopy struct {
	addr   string
	links  []auditchain.Link
	cp     *auditchain.Checkpoint
	resp   *deployv1.AuditResponse
	legacy uint64
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
	key, _ := creds.CACert().PublicKey.(*ecdsa.PublicKey)
	if key == nil {
		return errors.New("the cluster CA's key is not ECDSA: cannot check the checkpoint's signature")
	}
	fetch := func(addrs []string) (*auditCopy, []string, error) {
		cl := ctlclient.NewClient(creds, addrs, g.timeout)
		ctx, cancel := context.WithTimeout(cmd.Context(), g.deadline)
		defer cancel()
		// Page through the chain on one controller (the connection the
		// first page came from).
		var resp *deployv1.AuditResponse
		err := cl.CallConn(ctx, func(ctx context.Context, cc grpc.ClientConnInterface) error {
			c := deployv1.NewDeployServiceClient(cc)
			resp = nil
			var after uint64
			for {
				page, err := c.Audit(ctx, &deployv1.AuditRequest{Chain: true, AfterSeq: after})
				if err != nil {
					return err
				}
				if resp == nil {
					resp = page
				} else {
					resp.Links = append(resp.Links, page.GetLinks()...)
				}
				n := len(page.GetLinks())
				if !page.GetMore() || n == 0 {
					return nil
				}
				after = page.GetLinks()[n-1].GetSeq()
			}
		})
		if err != nil {
			return nil, nil, explain.Explain(err)
		}
		c := &auditCopy{resp: resp, legacy: resp.GetLegacy()}
		if len(addrs) == 1 {
			c.addr = addrs[0]
		}
		for _, l := range resp.GetLinks() {
			c.links = append(c.links, auditchain.Link{Seq: l.GetSeq(), Prev: l.GetPrevHash(), Value: l.GetEntry(), Hash: l.GetHash()})
		}
		if cp := resp.GetCheckpoint(); cp != nil {
			c.cp = &auditchain.Checkpoint{Seq: cp.GetSeq(), Hash: cp.GetHash(), Dropped: cp.GetDropped(), UnixMillis: cp.GetUnixMillis(), Signature: cp.GetSignature()}
		}
		return c, cl.Addrs(), nil
	}
	var copies []*auditCopy
	var unreachable []string
	if controller != "" {
		c, _, err := fetch([]string{controller})
		if err != nil {
			return err
		}
		copies = append(copies, c)
	} else {
		// Any controller first, which teaches every controller's address.
		_, addrs, err := fetch(f.Controllers)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			c, _, err := fetch([]string{a})
			if err != nil {
				unreachable = append(unreachable, a)
				continue
			}
			copies = append(copies, c)
		}
		if len(copies) == 0 {
			return fmt.Errorf("no controller answered (%s)", strings.Join(unreachable, ", "))
		}
	}
	for _, c := range copies {
		err := auditchain.Verify(c.links, c.cp, key)
		// During a CA rotation the checkpoint is signed by the new CA,
		// which the credentials also trust.
		for _, ca := range creds.CACerts()[1:] {
			if k, _ := ca.PublicKey.(*ecdsa.PublicKey); err != nil && k != nil && auditchain.Verify(c.links, c.cp, k) == nil {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("on controller %s: %w%s", c.addr, err, storedEntry(c.resp, err))
		}
	}
	for _, c := range copies[1:] {
		if seq := auditchain.Diverge(copies[0].links, c.links); seq != 0 {
			return fmt.Errorf("%w: entry %d differs between controllers %s and %s (one copy was rebuilt from altered data)%s%s",
				auditchain.ErrBroken, seq, copies[0].addr, c.addr,
				storedEntry(copies[0].resp, &auditchain.BrokenError{Seq: seq}), storedEntry(c.resp, &auditchain.BrokenError{Seq: seq}))
		}
	}
	links, cp := copies[0].links, copies[0].cp
	var b strings.Builder
	switch n := len(links); {
	case n == 0:
		b.WriteString("audit chain verified: empty")
	default:
		fmt.Fprintf(&b, "audit chain verified: %d entries (%d to %d)", n, links[0].Seq, links[n-1].Seq)
	}
	if len(copies) > 1 {
		fmt.Fprintf(&b, ", the same on %d controllers", len(copies))
	}
	if cp != nil {
		fmt.Fprintf(&b, "; %d older entries dropped by retention, anchored by a checkpoint signed by the cluster CA (%s)",
			cp.Dropped, time.UnixMilli(cp.UnixMillis).UTC().Format(time.RFC3339))
	}
	if n := copies[0].legacy; n > 0 {
		fmt.Fprintf(&b, "; %d entries from before the chain are not covered", n)
	}
	if len(unreachable) > 0 {
		fmt.Fprintf(&b, "; not checked (unreachable): %s", strings.Join(unreachable, ", "))
	}
	fmt.Fprintln(cmd.OutOrStdout(), b.String())
	return nil
}

// storedEntry shows, after a verification error naming an entry, that
// entry as the controller stores it.
func storedEntry(resp *deployv1.AuditResponse, err error) string {
	var be *auditchain.BrokenError
	if !errors.As(err, &be) || be.Seq == 0 {
		return ""
	}
	for _, l := range resp.GetLinks() {
		if l.GetSeq() != be.Seq {
			continue
		}
		e := new(deployv1.AuditEntry)
		if proto.Unmarshal(l.GetEntry(), e) != nil {
			return fmt.Sprintf("\n  entry %d as stored does not decode", be.Seq)
		}
		return fmt.Sprintf("\n  entry %d as stored: %s %s %s %s", be.Seq,
			time.UnixMilli(e.GetUnixMillis()).UTC().Format(time.RFC3339), e.GetOperator(), e.GetAction(), e.GetResult())
	}
	return ""
}
