package kctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kctl-dev/kctl/internal/controller/controllertest"
	"github.com/kctl-dev/kctl/internal/ctlclient"
	"github.com/kctl-dev/kctl/internal/kctl"
	"github.com/kctl-dev/kctl/internal/version"
)

// startController runs a one-node cluster and returns the path of its
// admin credentials.
func startController(t *testing.T) string {
	t.Helper()
	return controllertest.NewCluster(t, 1).AdminPath
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := kctl.Run(context.Background(), args, &out, &errb)
	return out.String(), err
}

func TestRun_ClusterCommands(t *testing.T) {
	creds := startController(t)
	out, err := run(t, "--credentials", creds, "cluster", "status", "-o", "json")
	if err != nil {
		t.Fatalf("cluster status = %v", err)
	}
	var st struct {
		Leader string `json:"leader"`
		Nodes  []struct {
			Name, Address, State, Version string
			Voter                         bool
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("cluster status -o json = %q: %v", out, err)
	}
	if st.Leader != "c1" || len(st.Nodes) != 1 || st.Nodes[0].State != "leader" || !st.Nodes[0].Voter {
		t.Fatalf("cluster status = %+v, want c1 leading alone", st)
	}
	if st.Nodes[0].Version != version.Version {
		t.Errorf("cluster status version = %q, want %q", st.Nodes[0].Version, version.Version)
	}
	if out, err := run(t, "version"); err != nil || out != "kctl "+version.Version+"\n" {
		t.Errorf("version = %q, %v; want kctl %s", out, err, version.Version)
	}
	out, err = run(t, "--credentials", creds, "token", "create", "--role", "agent", "--uses", "3")
	if err != nil || !strings.HasPrefix(out, "KCTL1-") || strings.Count(out, "\n") != 1 {
		t.Fatalf("token create = %q, %v; want one token line", out, err)
	}
	out, err = run(t, "--credentials", creds, "agents", "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("agents -o json = %q, %v; want []", out, err)
	}
	out, err = run(t, "--credentials", creds, "operators")
	if err != nil || !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "admin") {
		t.Fatalf("operators = %q, %v; want a table with admin", out, err)
	}
	// An operator logs in with a key made here.
	tok, err := run(t, "--credentials", creds, "token", "create", "--role", "operator", "--name", "vic", "--operator-role", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(st.Nodes[0].Address)
	vic := filepath.Join(t.TempDir(), "vic.yaml")
	if _, err := run(t, "--credentials", vic, "login", "--controller", addr, "--token", strings.TrimSpace(tok)); err != nil {
		t.Fatalf("login = %v", err)
	}
	if _, err := run(t, "--credentials", vic, "token", "create", "--role", "agent"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("token create as a viewer = %v, want permission denied", err)
	}
	if _, err := run(t, "--credentials", vic, "agents"); err != nil {
		t.Fatalf("agents as a viewer = %v", err)
	}
}

func TestRun_CredentialsForAnotherCluster(t *testing.T) {
	a := startController(t)
	b := startController(t)
	out, err := run(t, "--credentials", b, "cluster", "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Nodes []struct{ Address string } `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	// Cluster A's credentials pointed at cluster B's controller.
	f, err := ctlclient.LoadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	f.Controllers = []string{st.Nodes[0].Address}
	wrong := filepath.Join(t.TempDir(), "wrong.yaml")
	if err := f.Save(wrong); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, "--credentials", wrong, "agents")
	if err == nil || !strings.Contains(err.Error(), "another cluster") && !strings.Contains(err.Error(), "credentials file's CA") {
		t.Fatalf("agents with another cluster's credentials = %v, want an explanation", err)
	}
	t.Log(err)
}

func TestRun_ErrorsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--credentials", filepath.Join(t.TempDir(), "none.yaml"), "agents"}, "kctl login"},
		{[]string{"--credentials", "x", "token", "create", "--role", "bogus"}, "--role must be"},
		{[]string{"login"}, "--controller"},
	} {
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("kctl %v = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
