package dispatcher

import (
	"sync"
	"sync/atomic"
	"time"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	controllerv1 "github.com/kctl-dev/kctl/gen/kctl/controller/v1"
)

// session is one agent's stream on this controller.
type session struct {
	name, version string
	// protocol is the agent's protocol version (0: an older build).
	protocol uint32
	stream   agentv1.SessionService_SessionServer
	d        *Dispatcher
	// dead holds why the session was ended (kicked, replaced, silent). The
	// handler, blocked in Recv, returns it on the agent's next message (or
	// when keepalive or shutdown closes the connection): one goroutine per
	// session, not two.
	dead     atomic.Pointer[error]
	lastSeen atomic.Int64 // unix millis
	since    int64        // unix millis: when the session started
	// sendMu serializes stream.Send.
	sendMu sync.Mutex
	// mu guards sent.
	mu sync.Mutex
	// sent maps command ids delivered in this session to when.
	sent map[string]time.Time
}

// cancel ends the session: it leaves the presence map at once and its
// handler returns cause on the next message.
func (s *session) cancel(cause error) {
	if !s.dead.CompareAndSwap(nil, &cause) {
		return
	}
	s.d.remove(s)
}

func (s *session) send(m *agentv1.SessionResponse) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(m)
}

// deliver sends a command unless this session already sent it within
// resendAfter (0: ever).
func (s *session) deliver(rec *controllerv1.CommandRecord, resendAfter time.Duration) {
	if s.dead.Load() != nil {
		return
	}
	s.mu.Lock()
	at, done := s.sent[rec.GetId()]
	if done && (resendAfter == 0 || time.Since(at) < resendAfter) {
		s.mu.Unlock()
		return
	}
	s.sent[rec.GetId()] = time.Now()
	s.mu.Unlock()
	// Attempt numbers are per session; the agent dedupes by id.
	attempt := uint32(1)
	if done {
		attempt = 2
	}
	if err := s.send(&agentv1.SessionResponse{Msg: &agentv1.SessionResponse_Command{Command: &agentv1.Command{
		Id: rec.GetId(), Operation: rec.GetOperation(), Attempt: attempt,
	}}}); err != nil {
		s.cancel(err)
	}
}

// forget lets the command id be delivered again (its result was lost).
func (s *session) forget(id string) {
	s.mu.Lock()
	delete(s.sent, id)
	s.mu.Unlock()
}
