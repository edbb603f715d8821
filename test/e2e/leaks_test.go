package e2e

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wantNoSecrets fails t if a secret value appears anywhere an operator or
// an attacker with the controllers' disks could read it outside Raft:
// outputs (what kctl printed, by a name for the message), every
// controller's log, and every file of every controller's data directory
// except the Raft log and snapshots (raft/raft.db, raft/snapshots/), which
// hold a deploy's secrets while it runs.
//
// Each secret must be a real value (8+ characters, no whitespace: a value
// read back with its trailing newline could never match), and it is looked
// for both raw and as JSON escapes it.
func (e *env) wantNoSecrets(t *testing.T, secrets []string, outputs map[string]string) {
	t.Helper()
	var forms []string
	for _, s := range secrets {
		if len(s) < 8 || strings.ContainsAny(s, " \t\r\n") {
			t.Fatalf("secret %q is not a value the leak check can find (empty, short or with whitespace)", s)
		}
		j, _ := json.Marshal(s)
		forms = append(forms, s, strings.Trim(string(j), `"`))
	}
	sites := map[string]string{}
	for name, out := range outputs {
		sites[name] = out
	}
	files := 0
	for _, c := range e.ctls {
		sites["log of "+c.name] = c.p.Output()
		err := filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(c.dir, path)
			if rel == filepath.Join("raft", "snapshots") {
				return filepath.SkipDir
			}
			if d.IsDir() || rel == filepath.Join("raft", "raft.db") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sites[c.name+"'s data dir: "+rel] = string(b)
			files++
			return nil
		})
		must(t, err)
	}
	if len(e.ctls) == 0 || files == 0 {
		t.Fatalf("leak check read %d controllers and %d data dir files: nothing to check", len(e.ctls), files)
	}
	for name, text := range sites {
		for _, f := range forms {
			if strings.Contains(text, f) {
				t.Errorf("a secret value leaks into %s", name)
				break
			}
		}
	}
}

// everyListing adds to outputs what kctl prints about the project's
// history in every form: `audit` and `deploys` as tables and JSON, and
// `deploys show` of each deploy, plain and JSON.
func (e *env) everyListing(p *project, outputs map[string]string) map[string]string {
	e.t.Helper()
	for _, args := range [][]string{
		{"audit", "--service", p.service}, {"audit", "--service", p.service, "-o", "json"},
		{"deploys"}, {"deploys", "-o", "json"},
	} {
		out, err := e.kctlIn(p.Dir, args...)
		must(e.t, err)
		outputs[strings.Join(args, " ")] = out
	}
	var deploys []map[string]string
	must(e.t, json.Unmarshal([]byte(outputs["deploys -o json"]), &deploys))
	if len(deploys) == 0 {
		e.t.Fatal("deploys -o json lists no deploy")
	}
	for _, d := range deploys {
		for _, args := range [][]string{{"deploys", "show", d["id"]}, {"deploys", "show", d["id"], "-o", "json"}} {
			out, err := e.kctlIn(p.Dir, args...)
			must(e.t, err)
			outputs[strings.Join(args, " ")] = out
		}
	}
	return outputs
}
