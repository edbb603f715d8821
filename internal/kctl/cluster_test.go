package kctl_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kctl-dev/kctl/internal/cli"
	"github.com/kctl-dev/kctl/internal/controller/controllertest"
)

// `kctl cluster status` shows each node's health and exits 1 when the
// cluster is unhealthy; `kctl cluster remove` of a dead node works and says
// a CA rotation is needed.
func TestRun_ClusterStatusHealthAndRemove(t *testing.T) {
	tc := controllertest.NewCluster(t, 3)
	creds := tc.AdminPath
	var out string
	controllertest.WaitFor(t, 15*time.Second, "a healthy cluster", func() error {
		var err error
		out, err = run(t, "--credentials", creds, "cluster", "status")
		return err
	})
	for _, col := range []string{"STATE", "TERM", "LAST CONTACT", "APPLIED", "LAG", "SNAPSHOT", "DISK FREE", "VERSION", "leader", "follower"} {
		if !strings.Contains(out, col) {
			t.Fatalf("cluster status = %q, want %q", out, col)
		}
	}
	dead := tc.Follower()
	name := tc.Nodes[dead].Name
	tc.Kill(dead)
	out, err := run(t, "--credentials", creds, "cluster", "status")
	var ee *cli.ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(out, "unhealthy: "+name+": unreachable") {
		t.Fatalf("cluster status with %s dead = %q, %v; want exit 1 naming it unreachable", name, out, err)
	}
	out, err = run(t, "--credentials", creds, "cluster", "remove", name)
	if err != nil || !strings.Contains(out, "removed controller "+name) || !strings.Contains(out, "rotate the CA") {
		t.Fatalf("cluster remove %s = %q, %v; want the removal and the CA rotation advice", name, out, err)
	}
	controllertest.WaitFor(t, 15*time.Second, "a healthy 2-node cluster", func() error {
		out, err = run(t, "--credentials", creds, "cluster", "status")
		return err
	})
	if strings.Contains(out, name) {
		t.Fatalf("cluster status after removing %s = %q", name, out)
	}
}
