package raftstore

import "sync"

// notifier tells waiters and watchers that the state changed. The zero
// value is ready to use.
type notifier struct {
	// mu guards the fields that follow.
	mu sync.Mutex
	// ch is closed and replaced after every state change.
	ch       chan struct{}
	watchers map[chan struct{}]struct{}
}

// next returns a channel closed at the next state change.
func (n *notifier) next() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// applied reports a state change.
func (n *notifier) applied() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	for ch := range n.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// watch registers a coalescing watcher (see Store.Watch).
func (n *notifier) watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.watchers == nil {
		n.watchers = map[chan struct{}]struct{}{}
	}
	n.watchers[ch] = struct{}{}
	n.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			n.mu.Lock()
			delete(n.watchers, ch)
			n.mu.Unlock()
		})
	}
}
