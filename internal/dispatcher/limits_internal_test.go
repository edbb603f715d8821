package dispatcher

import (
	"testing"
	"time"

	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

func TestAdmitSession_BoundsEachAgentsSessionStarts(t *testing.T) {
	d := New(Config{Name: "c1"}, NewMemCluster())
	for i := range SessionBurst {
		if !d.admitSession("web-1") {
			t.Fatalf("session start #%d of web-1 refused, want the first %d admitted", i, SessionBurst)
		}
	}
	if d.admitSession("web-1") {
		t.Errorf("session start #%d of web-1 admitted at once, want refused", SessionBurst)
	}
	if !d.admitSession("web-2") {
		t.Errorf("web-2 refused because of web-1's starts")
	}
	d.Kick("web-1") // removed (and maybe enrolled again): a fresh budget
	if !d.admitSession("web-1") {
		t.Errorf("web-1 refused after its removal reset its budget")
	}
}

func TestPresenceRecord_DropsAgentsGoneLongerThanTheRetention(t *testing.T) {
	d := New(Config{Name: "c1"}, NewMemCluster())
	now := time.Now()
	d.gone["old"] = &controllerv1.AgentPresence{Name: "old", LastSeenUnixMillis: now.Add(-GoneRetention - time.Minute).UnixMilli()}
	d.gone["recent"] = &controllerv1.AgentPresence{Name: "recent", LastSeenUnixMillis: now.Add(-time.Minute).UnixMilli()}
	rec := d.presenceRecord(now, false)
	if len(rec.GetAgents()) != 1 || rec.GetAgents()[0].GetName() != "recent" {
		t.Errorf("presence record = %v, want only the agent gone a minute ago", rec.GetAgents())
	}
	if _, ok := d.gone["old"]; ok {
		t.Errorf("the agent gone past the retention is still remembered")
	}
}
