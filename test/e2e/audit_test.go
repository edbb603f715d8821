package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// auditLine is one line of `kctl audit -o jsonl`.
type auditLine struct {
	Seq        uint64 `json:"seq,string"`
	Time       string `json:"time"`
	Operator   string `json:"operator"`
	CallerRole string `json:"caller_role"`
	Address    string `json:"address"`
	Method     string `json:"method"`
	Action     string `json:"action"`
	Result     string `json:"result"`
	PrevHash   string `json:"prev_hash"`
	Hash       string `json:"hash"`
}

// The real binaries, three controllers: a token, a login, a revocation and
// an operator's removal each land in the audit, exported one JSON object a
// line (`kctl audit -o jsonl --since`), chained entry to entry, without the
// token's secret; `kctl audit verify` passes on every controller.
func TestE2E_AuditExportAndVerify(t *testing.T) {
	e := newEnv(t)
	start := time.Now().UTC().Add(-time.Second)
	cs := e.startCluster(3)
	// The cluster's own start is audited (the controllers' joins): count
	// what follows it.
	base := parseAudit(t, e.mustKctl("audit", "-o", "jsonl"))
	last := base[len(base)-1].Seq
	tok := strings.TrimSpace(e.mustKctl("token", "create", "--role", "operator", "--name", "bob", "--operator-role", "viewer"))
	bobCreds := filepath.Join(e.dir, "bob.yaml")
	if out, err := e.runBin(30*time.Second, "kctl", "--credentials", bobCreds, "login", "--controller", cs[1].api, "--token", tok); err != nil {
		t.Fatalf("bob login: %v\n%s", err, out)
	}
	spare := strings.TrimSpace(e.mustKctl("token", "create", "--role", "agent"))
	var tokens []struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	}
	must(t, json.Unmarshal([]byte(e.mustKctl("token", "list", "-o", "json")), &tokens))
	for _, tk := range tokens {
		if tk.Role == "agent" {
			e.mustKctl("token", "revoke", tk.ID)
		}
	}
	e.mustKctl("operators", "remove", "bob")

	out := e.mustKctl("audit", "-o", "jsonl", "--since", start.Format(time.RFC3339))
	lines := parseAudit(t, out)
	count := map[string]int{}
	for i, a := range lines {
		_, m, _ := strings.Cut(a.Method, "Service/")
		if a.Seq > last {
			count[m]++
		}
		if a.Seq == 0 || len(a.Hash) != 64 || a.Address == "" || a.Result != "ok" {
			t.Errorf("line %d = %+v, want seq, hash, address, ok", i, a)
		}
		if i > 0 && lines[i-1].Seq+1 == a.Seq && a.PrevHash != lines[i-1].Hash {
			t.Errorf("entry %d's prev_hash %s is not entry %d's hash %s", a.Seq, a.PrevHash, lines[i-1].Seq, lines[i-1].Hash)
		}
		if m == "Join" && a.Operator == "bob" && a.CallerRole != "operator/viewer" {
			t.Errorf("bob's login = %+v, want operator/viewer", a)
		}
	}
	for m, want := range map[string]int{"CreateToken": 2, "Join": 1, "RevokeToken": 1, "RemoveOperator": 1} {
		if count[m] != want {
			t.Errorf("%d %s entries since the start, want %d:\n%s", count[m], m, want, out)
		}
	}
	for _, s := range []string{tok, spare} {
		if strings.Contains(out, s) {
			t.Errorf("the audit export holds a token's secret")
		}
	}
	// --since in the future: nothing; a duration: the same entries.
	if out := e.mustKctl("audit", "-o", "jsonl", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); strings.TrimSpace(out) != "" {
		t.Errorf("audit --since (future) = %q, want nothing", out)
	}
	if out := e.mustKctl("audit", "-o", "jsonl", "--since", "1h"); strings.Count(out, "\n") < len(lines) {
		t.Errorf("audit --since 1h printed %d lines, want at least %d", strings.Count(out, "\n"), len(lines))
	}
	for _, c := range cs {
		out, err := e.kctl("audit", "verify", "--controller", c.api)
		if err != nil || !strings.Contains(out, "audit chain verified") {
			t.Errorf("audit verify on %s = %v, %s", c.name, err, out)
		}
	}
}

func parseAudit(t *testing.T, out string) []auditLine {
	t.Helper()
	var lines []auditLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var a auditLine
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("audit -o jsonl line %q: %v", l, err)
		}
		lines = append(lines, a)
	}
	if len(lines) == 0 {
		t.Fatal("audit -o jsonl printed nothing")
	}
	return lines
}
