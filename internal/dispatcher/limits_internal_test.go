package dispatcher

import "testing"

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
