package e2e

import (
	"crypto/ecdsa"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/testenv"
)

// wantNoSecrets fails t if a secret value appears anywhere an operator or
// an attacker with the controllers' disks could read it: outputs (what kctl
// printed, by a name for the message), every controller's log, and every
// file of every controller's data directory, the Raft log and snapshots
// (raft/raft.db, raft/snapshots/) included: kctl seals secrets to each
// agent, so controllers only ever hold ciphertext. Nor may any controller
// file hold the cluster CA's private key in any encoding (PEM, DER, base64
// of DER). On each agent, only its 0600 env files may hold a secret.
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
			if d.IsDir() {
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
	if _, ok := sites[e.ctls[0].name+"'s data dir: "+filepath.Join("raft", "raft.db")]; !ok {
		t.Fatalf("leak check did not read %s's raft.db", e.ctls[0].name)
	}
	f, err := ctlclient.LoadFile(e.creds)
	must(t, err)
	creds, err := f.Credentials()
	must(t, err)
	caPub := creds.CACert().PublicKey.(*ecdsa.PublicKey)
	for _, c := range e.ctls {
		hits, _, err := testenv.FindPrivateKeyInDir(caPub, c.dir)
		must(t, err)
		for _, h := range hits {
			t.Errorf("%s's data dir holds the cluster CA's private key: %s", c.name, h)
		}
	}
	agentFiles := 0
	for _, name := range e.hosts {
		dir := filepath.Join(e.dir, name)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			agentFiles++
			for _, f := range forms {
				if !strings.Contains(string(b), f) {
					continue
				}
				st, err := d.Info()
				if err != nil {
					return err
				}
				if rel, _ := filepath.Rel(dir, path); !strings.HasSuffix(path, ".env") || st.Mode().Perm() != 0o600 {
					t.Errorf("a secret value is in agent %s's %s (mode %v): only 0600 env files may hold one", name, rel, st.Mode().Perm())
				}
				break
			}
			return nil
		})
		must(t, err)
	}
	if len(e.hosts) == 0 || agentFiles == 0 {
		t.Fatalf("leak check read %d agents and %d agent files: nothing to check", len(e.hosts), agentFiles)
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
