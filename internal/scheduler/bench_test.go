package scheduler_test

import (
	"fmt"
	"testing"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
	"github.com/kctl-dev/kctl/internal/scheduler"
)

// BenchmarkPlan100Hosts measures planning a deploy of two roles over 100
// hosts with boot limit 10; divide ns/op by 100 for the cost per host.
func BenchmarkPlan100Hosts(b *testing.B) {
	var web, job []string
	fleet := scheduler.FleetMap{}
	for i := range 100 {
		h := fmt.Sprintf("h%03d", i)
		fleet[h] = scheduler.AgentConnected
		if i%4 == 0 {
			job = append(job, h)
		} else {
			web = append(web, h)
		}
	}
	req := request(map[string][]string{"web": web, "job": job}, "web", "job")
	req.Boot = &deployv1.Boot{Limit: 10}
	for b.Loop() {
		if _, err := scheduler.Plan(req, fleet); err != nil {
			b.Fatal(err)
		}
	}
}
