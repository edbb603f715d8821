package dispatcher

import (
	"errors"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
)

// ErrNotHeld is returned by OpenTunnel when this controller holds no
// session of the agent.
var ErrNotHeld = errors.New("dispatcher: agent session not held here")

// OpenTunnel asks the agent's session here to dial a Tunnel for an
// operator's stream id (internal/relay). It returns ErrNotHeld when this
// controller holds no live session of the agent.
func (d *Dispatcher) OpenTunnel(agent, id string) error {
	d.mu.Lock()
	s := d.sessions[agent]
	d.mu.Unlock()
	if s == nil || s.dead.Load() != nil {
		return ErrNotHeld
	}
	err := s.send(&agentv1.SessionResponse{Msg: &agentv1.SessionResponse_OpenTunnel{OpenTunnel: &streamv1.OpenTunnel{Id: id}}})
	if err != nil {
		s.cancel(err)
		return ErrNotHeld
	}
	return nil
}
