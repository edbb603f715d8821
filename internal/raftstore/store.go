package raftstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Config configures a Store. NodeID, DataDir and either Listener with
// ServerTLS and ClientTLS, or Transport, are required.
type Config struct {
	// NodeID is this node's stable raft server ID (the controller name).
	NodeID string
	// DataDir holds the raft log, metadata and snapshots (under DataDir/raft).
	DataDir string
	// Advertise is the raft address peers dial; default Listener.Addr(),
	// which must then not be an unspecified address (0.0.0.0).
	Advertise string
	// Listener is the raft listener. The caller creates it; the Store closes
	// it on Close.
	Listener net.Listener
	// ServerTLS and ClientTLS secure raft traffic with mutual TLS (see
	// NewTLSStreamLayer). Nil only with Transport set.
	ServerTLS, ClientTLS *tls.Config
	// Transport replaces the TLS transport (tests: raft.InmemTransport). The
	// caller owns and closes it.
	Transport raft.Transport
	// VerifyPeer authorizes a raft peer's verified leaf certificate, e.g.
	// role=controller and not revoked. Nil accepts any certificate of the CA.
	// It is called concurrently from transport goroutines as soon as Open
	// starts (before Open returns): it must be safe for concurrent use and
	// must not read variables assigned from Open's result without
	// synchronization. See ReverifyPeers for revocations.
	VerifyPeer func(*x509.Certificate) error
	// Logger receives raft's logs; default discards.
	Logger *slog.Logger

	// Timing knobs (zero: hashicorp/raft's defaults).
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	// SnapshotInterval is how often raft checks whether to snapshot.
	SnapshotInterval time.Duration
	// SnapshotThreshold is how many new log entries trigger a snapshot;
	// TrailingLogs how many entries are kept after one (defaults 8192, 10240).
	SnapshotThreshold, TrailingLogs uint64
	// SnapshotRetain is how many snapshots are kept on disk (default 2).
	SnapshotRetain int

	// ForceNewCluster recovers a cluster that lost its quorum for good:
	// before starting, Open rewrites the local configuration to this node
	// alone (raft.RecoverCluster), so it elects itself leader of a one-node
	// cluster holding every entry of its local log, committed or not;
	// entries it never received are lost. Use it on one survivor only, and
	// never while a quorum of the old configuration could still run.
	ForceNewCluster bool

	// BeforeApply, if set, may rewrite a command before Apply proposes it
	// (the controller writes a format older replicas read while the
	// cluster still has them: schema.Unchain). It is called on the leader.
	BeforeApply func(*raftcmdv1.Command)
}

// Server is one member of the raft configuration.
type Server struct {
	ID, Address string
	Voter       bool
	Leader      bool
}

// Store is a replicated table store. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	logger *slog.Logger
	raft   *raft.Raft
	fsm    *fsm
	bolt   *boltSwap
	logs   raft.LogStore // the cache over bolt that raft uses (purge.go)
	snaps  raft.SnapshotStore
	trans  raft.Transport
	// ownTrans is the transport Open created (closed by Close), stream its
	// TLS layer.
	ownTrans *raft.NetworkTransport
	stream   *tlsStreamLayer

	// notify tells waiters and watchers about applied state changes.
	notify notifier

	// leaderMu guards the leadership fields that follow.
	leaderMu sync.Mutex
	// ready is true while this node is leader and its Barrier has completed:
	// every entry of earlier terms is applied.
	ready bool
	// leaderGen counts leadership transitions (discards stale barriers).
	leaderGen uint64
	// leaderChanged is closed and replaced on every transition of ready.
	leaderChanged chan struct{}
	leaderSubs    map[chan bool]struct{}

	// haltCh wakes the leader loop when the FSM halts.
	haltCh chan struct{}

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
	wg        sync.WaitGroup
}

// Open opens the store in cfg.DataDir, empty or holding earlier state, and
// starts raft. A new node has no configuration: call Bootstrap to start a
// cluster, or have the leader AddVoter it to join one. An existing node
// resumes from its snapshot and log.
func Open(cfg Config) (*Store, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.NodeID)
	hl := newHCLog(logger)
	bolt, snaps, logs, err := openStorage(cfg, hl)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:           cfg,
		logger:        logger,
		bolt:          bolt,
		logs:          logs,
		snaps:         snaps,
		leaderChanged: make(chan struct{}),
		leaderSubs:    make(map[chan bool]struct{}),
		closed:        make(chan struct{}),
		haltCh:        make(chan struct{}, 1),
	}
	s.fsm = newFSM(s.notifyApplied)
	s.fsm.onHalt = s.onHalt
	s.trans = cfg.Transport
	if s.trans == nil {
		s.stream = newTLSStreamLayer(cfg.Listener, stringAddr(cfg.Advertise), cfg.ServerTLS, cfg.ClientTLS, cfg.VerifyPeer, logger)
		s.ownTrans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  s.stream,
			MaxPool: 3,
			Timeout: 10 * time.Second,
			Logger:  hl.Named("transport"),
		})
		s.trans = noPipeline{s.ownTrans}
	}
	if cfg.ForceNewCluster {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: s.trans.LocalAddr()}}}
		logger.Warn("raftstore: forcing a new one-node cluster from the local state", "address", s.trans.LocalAddr())
		if err := raft.RecoverCluster(cfg.raftConfig(hl), newFSM(nil), logs, bolt, snaps, s.trans, conf); err != nil {
			if s.ownTrans != nil {
				s.ownTrans.Close()
			}
			bolt.Close()
			return nil, fmt.Errorf("raftstore: force new cluster: %w", err)
		}
	}
	r, err := raft.NewRaft(cfg.raftConfig(hl), s.fsm, logs, bolt, snaps, s.trans)
	if err != nil {
		if s.ownTrans != nil {
			s.ownTrans.Close()
		}
		bolt.Close()
		return nil, fmt.Errorf("raftstore: start raft: %w", err)
	}
	s.raft = r
	s.wg.Add(1)
	go s.leaderLoop()
	return s, nil
}

// check validates cfg and fills in Advertise from the Listener.
func (cfg *Config) check() error {
	if cfg.NodeID == "" {
		return fmt.Errorf("%w: NodeID is required", ErrInvalidConfig)
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("%w: DataDir is required", ErrInvalidConfig)
	}
	if cfg.Transport != nil {
		return nil
	}
	if cfg.Listener == nil {
		return fmt.Errorf("%w: Listener or Transport is required", ErrInvalidConfig)
	}
	if cfg.ServerTLS == nil || cfg.ClientTLS == nil {
		return fmt.Errorf("%w: ServerTLS and ClientTLS are required with a Listener", ErrInvalidConfig)
	}
	if cfg.Advertise == "" {
		if a, ok := cfg.Listener.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
			return fmt.Errorf("%w: listening on %s: set Advertise to an address peers can dial", ErrInvalidConfig, a)
		}
		cfg.Advertise = cfg.Listener.Addr().String()
	}
	return nil
}

// openStorage opens the log store (bbolt), the snapshot store and the log
// cache under cfg.DataDir/raft.
func openStorage(cfg Config, hl hclog.Logger) (*boltSwap, *raft.FileSnapshotStore, raft.LogStore, error) {
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("raftstore: create data dir: %w", err)
	}
	dbPath := filepath.Join(dir, "raft.db")
	bolt, err := openBoltSwap(raftboltdb.Options{Path: dbPath, BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, nil, nil, fmt.Errorf("%w: %s is locked by another process (is another controller running with this data dir?)", ErrDataDirInUse, dbPath)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("raftstore: open log store %s: %w", dbPath, err)
	}
	retain := cfg.SnapshotRetain
	if retain <= 0 {
		retain = 2
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, retain, hl.Named("snapshot"))
	if err != nil {
		bolt.Close()
		return nil, nil, nil, fmt.Errorf("raftstore: open snapshot store: %w", err)
	}
	logs, err := raft.NewLogCache(512, bolt)
	if err != nil {
		bolt.Close()
		return nil, nil, nil, fmt.Errorf("raftstore: log cache: %w", err)
	}
	return bolt, snaps, logs, nil
}

// raftConfig is raft's configuration: its defaults with cfg's timeouts and
// snapshot settings where set.
func (cfg *Config) raftConfig(hl hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hl.Named("raft")
	rc.BatchApplyCh = true
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setDur(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setDur(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	setDur(&rc.CommitTimeout, cfg.CommitTimeout)
	setDur(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if rc.LeaderLeaseTimeout > rc.HeartbeatTimeout {
		rc.LeaderLeaseTimeout = rc.HeartbeatTimeout
	}
	return rc
}

// HasState reports whether the data directory holds raft state: the node was
// bootstrapped or has joined a cluster. Use it to refuse --init or --join on
// an initialized node.
func (s *Store) HasState() bool {
	ok, err := raft.HasExistingState(s.bolt, s.bolt, s.snaps)
	return err == nil && ok
}

// Bootstrap starts a new cluster with this node as its only voter.
// It returns ErrAlreadyBootstrapped if the node holds state.
func (s *Store) Bootstrap() error {
	if s.isClosed() {
		return ErrClosed
	}
	if s.HasState() {
		return ErrAlreadyBootstrapped
	}
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(s.cfg.NodeID),
		Address:  s.trans.LocalAddr(),
	}}}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return ErrAlreadyBootstrapped
	}
	if err != nil {
		return fmt.Errorf("raftstore: bootstrap: %w", err)
	}
	return nil
}

// Apply proposes cmd and waits until it is committed and applied on this
// node, the leader. It returns the command's Result: Applied false with
// Conflict set when a precondition failed (not an error).
//
// On a follower Apply returns a *NotLeaderError (errors.Is ErrNotLeader)
// naming the leader. Apply sets cmd.unix_nanos to the current time if it is
// zero (on a copy; cmd is not modified).
//
// If ctx ends first, Apply returns ctx's error but the command may still
// commit: nothing can withdraw a proposal. Likewise after ErrLeadershipLost.
// Retry such writes with the same request_id to make them idempotent.
func (s *Store) Apply(ctx context.Context, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("raftstore: apply: %w", err)
	}
	if s.cfg.BeforeApply != nil {
		s.cfg.BeforeApply(cmd)
	}
	if err := checkCommand(cmd); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommand, err)
	}
	if err := checkFormat(cmd); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommand, err)
	}
	if err := s.fsm.haltErr(); err != nil {
		return nil, err
	}
	if s.raft.State() != raft.Leader {
		return nil, s.notLeader()
	}
	c := cmd
	if c.GetUnixNanos() == 0 {
		c = &raftcmdv1.Command{
			UnixNanos:     time.Now().UnixNano(),
			RequestId:     cmd.GetRequestId(),
			Preconditions: cmd.GetPreconditions(),
			Mutations:     cmd.GetMutations(),
			IgnoreUnknown: cmd.GetIgnoreUnknown(),
			Format:        cmd.GetFormat(),
		}
	}
	if id := c.GetRequestId(); id != "" {
		// Already applied here: answer without another log entry.
		if v, ok := s.fsm.state().requests.Get([]byte(id)); ok {
			return proto.Clone(v.(*requestEntry).result).(*raftcmdv1.Result), nil
		}
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("raftstore: encode command: %w", err)
	}
	if len(body)+1 > MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrCommandTooLarge, len(body)+1, MaxCommandBytes)
	}
	data := make([]byte, 0, len(body)+1)
	data = append(append(data, entryCommand), body...)

	var enqueue time.Duration
	if dl, ok := ctx.Deadline(); ok {
		enqueue = max(time.Until(dl), time.Millisecond)
	}
	f := s.raft.ApplyLog(raft.Log{Data: data}, enqueue)
	if err := s.wait(ctx, f); err != nil {
		return nil, err
	}
	res, ok := f.Response().(*raftcmdv1.Result)
	if !ok && f.Response() == nil {
		if err := s.fsm.haltErr(); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, fmt.Errorf("raftstore: apply: unexpected FSM response %T", f.Response())
	}
	return res, nil
}

// wait waits for a raft future, translating raft's errors.
func (s *Store) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("raftstore: %w (the operation may still complete)", ctx.Err())
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return s.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("raftstore: %w (raft is busy)", context.DeadlineExceeded)
	default:
		return fmt.Errorf("raftstore: %w", err)
	}
}

func (s *Store) notLeader() error {
	addr, id := s.raft.LeaderWithID()
	return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}

// Get returns the record table/key from local state (possibly stale on a
// follower; see ConsistentRead).
func (s *Store) Get(table, key string) (Record, bool) { return s.View().Get(table, key) }

// List returns table's records whose key starts with prefix, sorted by key,
// from local state.
func (s *Store) List(table, prefix string) []Record { return s.View().List(table, prefix) }

// View returns an immutable, consistent view of the local state.
func (s *Store) View() *Snapshot {
	st := s.fsm.state()
	return &Snapshot{records: st.records, index: st.index}
}

// AppliedIndex is the last log index applied to the local state.
func (s *Store) AppliedIndex() uint64 { return s.fsm.state().index }

// StateHash returns the applied index and the SHA-256 of the local state's
// snapshot encoding. Replicas at the same index have the same hash.
func (s *Store) StateHash() (uint64, [32]byte) {
	st := s.fsm.state()
	return st.index, stateHash(st)
}

func (s *Store) notifyApplied() { s.notify.applied() }

// WaitForIndex waits until the local state has applied index idx.
func (s *Store) WaitForIndex(ctx context.Context, idx uint64) error {
	for {
		ch := s.notify.next()
		if s.AppliedIndex() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("raftstore: wait for index %d (applied %d): %w", idx, s.AppliedIndex(), ctx.Err())
		case <-s.closed:
			return ErrClosed
		}
	}
}

// LastContact is when this node last heard from the leader (now on the
// leader; zero before any contact).
func (s *Store) LastContact() time.Time {
	if s.raft.State() == raft.Leader {
		return time.Now()
	}
	return s.raft.LastContact()
}

// Watch returns a channel that receives a value after state changes
// (coalesced: one value may stand for many applies) and a func that stops
// the watch. Re-read the state (View) on each notification. The channel is
// not closed by Close; select on your own shutdown signal too.
func (s *Store) Watch() (<-chan struct{}, func()) { return s.notify.watch() }

// leaderLoop follows raft's leadership changes. On gaining leadership it
// runs a Barrier, so every entry of earlier terms is applied, before
// reporting the node ready (IsLeader, LeaderCh, ConsistentRead).
func (s *Store) leaderLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closed:
			return
		case <-s.haltCh:
			if s.raft.State() == raft.Leader {
				// Not waited for: the transfer may never finish (every
				// peer may be halted too), and Close must not hang on it.
				s.raft.LeadershipTransfer()
			}
		case isLeader := <-s.raft.LeaderCh():
			s.leaderMu.Lock()
			s.leaderGen++
			gen := s.leaderGen
			s.setReadyLocked(false)
			s.leaderMu.Unlock()
			if isLeader {
				s.wg.Add(1)
				go s.establish(gen)
			}
		}
	}
}

func (s *Store) establish(gen uint64) {
	defer s.wg.Done()
	if err := s.fsm.haltErr(); err != nil {
		// A halted node must not lead: its state lags the log.
		s.logger.Error("raftstore: elected while halted; transferring leadership", "err", err)
		// Not waited for: the transfer may never finish (every peer may be
		// halted too), and Close must not hang on it.
		s.raft.LeadershipTransfer()
		return
	}
	for {
		err := s.raft.Barrier(0).Error()
		s.leaderMu.Lock()
		if gen != s.leaderGen {
			s.leaderMu.Unlock()
			return
		}
		if err == nil {
			s.setReadyLocked(true)
			s.leaderMu.Unlock()
			s.logger.Info("raftstore: leader ready", "applied_index", s.AppliedIndex())
			return
		}
		s.leaderMu.Unlock()
		if errors.Is(err, raft.ErrRaftShutdown) || s.raft.State() != raft.Leader {
			return
		}
		s.logger.Warn("raftstore: leader barrier failed, retrying", "err", err)
		select {
		case <-s.closed:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// setReadyLocked updates ready and notifies subscribers. leaderMu is held.
func (s *Store) setReadyLocked(v bool) {
	if s.ready == v {
		return
	}
	s.ready = v
	close(s.leaderChanged)
	s.leaderChanged = make(chan struct{})
	for ch := range s.leaderSubs {
		select { // keep only the latest value
		case <-ch:
		default:
		}
		ch <- v
	}
}

// IsLeader reports whether this node is the leader and ready: its Barrier
// completed, so its state includes every committed entry of earlier terms.
func (s *Store) IsLeader() bool {
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	return s.ready && s.raft.State() == raft.Leader && s.fsm.haltErr() == nil
}

// Halted returns why this node stopped applying the log (an
// ErrIncompatible: a committed entry or a snapshot needs a newer build), or
// nil. A halted node serves nothing: its state lags the log.
func (s *Store) Halted() error { return s.fsm.haltErr() }

// onHalt logs why the FSM halted, wakes watchers (who check Halted) and
// hands leadership away.
func (s *Store) onHalt(err error) {
	s.logger.Error("raftstore: stopped applying the log: this controller's build is too old for the cluster's data", "err", err)
	s.notify.applied()
	// The leader loop hands leadership away: this runs on the FSM
	// goroutine, possibly while Open still starts raft.
	select {
	case s.haltCh <- struct{}{}:
	default:
	}
}

// Leader returns the ID and raft address of the leader this node knows of
// (empty during an election).
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// LeaderCh returns a channel that receives true when this node becomes the
// ready leader and false when it stops being leader. Only the latest value is
// kept if the receiver lags; a new channel first receives true if the node is
// already the ready leader. The channel is closed by Close.
func (s *Store) LeaderCh() <-chan bool {
	ch := make(chan bool, 1)
	s.leaderMu.Lock()
	defer s.leaderMu.Unlock()
	if s.isClosed() {
		close(ch)
		return ch
	}
	s.leaderSubs[ch] = struct{}{}
	if s.ready {
		ch <- true
	}
	return ch
}

// ConsistentRead makes the next local read linearizable: it confirms with a
// quorum that this node is still leader and waits until the leader is ready
// (see IsLeader). Followers get a *NotLeaderError.
func (s *Store) ConsistentRead(ctx context.Context) error {
	if s.isClosed() {
		return ErrClosed
	}
	if err := s.fsm.haltErr(); err != nil {
		return err
	}
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	if err := s.wait(ctx, s.raft.VerifyLeader()); err != nil {
		return err
	}
	for {
		s.leaderMu.Lock()
		ready, ch := s.ready, s.leaderChanged
		s.leaderMu.Unlock()
		if ready {
			return nil
		}
		if s.raft.State() != raft.Leader {
			return s.notLeader()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("raftstore: consistent read: leader not ready: %w", ctx.Err())
		case <-s.closed:
			return ErrClosed
		}
	}
}

// leaderServers returns the cluster's current members; leader only.
func (s *Store) leaderServers(ctx context.Context) ([]raft.Server, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if s.raft.State() != raft.Leader {
		return nil, s.notLeader()
	}
	cf := s.raft.GetConfiguration()
	if err := s.wait(ctx, cf); err != nil {
		return nil, err
	}
	return cf.Configuration().Servers, nil
}

// AddVoter adds (or promotes) a voting member; leader only. It is
// idempotent: a server already present with the same ID and address is left
// alone, and a stale entry with the same ID or the same address is removed
// first (a node that was rebuilt or moved).
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	servers, err := s.leaderServers(ctx)
	if err != nil {
		return err
	}
	for _, srv := range servers {
		sameID, sameAddr := srv.ID == raft.ServerID(id), srv.Address == raft.ServerAddress(addr)
		switch {
		case sameID && sameAddr && srv.Suffrage == raft.Voter:
			return nil
		case sameID && sameAddr:
			// A nonvoter: AddVoter promotes it.
		case sameID || sameAddr:
			s.logger.Info("raftstore: removing stale server before adding", "id", srv.ID, "address", srv.Address)
			if err := s.wait(ctx, s.raft.RemoveServer(srv.ID, 0, 0)); err != nil {
				return fmt.Errorf("raftstore: remove stale server %s: %w", srv.ID, err)
			}
		}
	}
	if err := s.wait(ctx, s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0)); err != nil {
		return fmt.Errorf("raftstore: add voter %s: %w", id, err)
	}
	return nil
}

// RemoveServer removes a member; leader only. Removing an unknown ID is not
// an error. Removing the leader itself makes it step down once committed.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	servers, err := s.leaderServers(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, srv := range servers {
		found = found || srv.ID == raft.ServerID(id)
	}
	if !found {
		return nil
	}
	if err := s.wait(ctx, s.raft.RemoveServer(raft.ServerID(id), 0, 0)); err != nil {
		return fmt.Errorf("raftstore: remove server %s: %w", id, err)
	}
	return nil
}

// Servers returns the latest raft configuration this node knows, marking the
// leader.
func (s *Store) Servers() ([]Server, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, fmt.Errorf("raftstore: get configuration: %w", err)
	}
	_, leader := s.raft.LeaderWithID()
	var out []Server
	for _, srv := range cf.Configuration().Servers {
		out = append(out, Server{
			ID:      string(srv.ID),
			Address: string(srv.Address),
			Voter:   srv.Suffrage == raft.Voter,
			Leader:  srv.ID == leader && leader != "",
		})
	}
	return out, nil
}

// LeadershipTransfer asks the leader to hand leadership to another voter and
// waits for the attempt to finish.
func (s *Store) LeadershipTransfer() error {
	if s.isClosed() {
		return ErrClosed
	}
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	return s.wait(context.Background(), s.raft.LeadershipTransfer())
}

// ReverifyPeers closes every raft connection, so each peer must dial again
// and pass certificate verification (Config.VerifyPeer) anew. Call it after
// revoking a controller certificate; raft reconnects by itself. It does
// nothing with a caller-supplied Transport.
func (s *Store) ReverifyPeers() {
	if s.stream == nil || s.isClosed() {
		return
	}
	s.ownTrans.CloseStreams()
	n := s.stream.closeLive()
	s.logger.Info("raftstore: closed raft connections for re-verification", "connections", n)
}

// Snapshot takes a snapshot now (and truncates the log per TrailingLogs).
// With nothing new since the last snapshot it does nothing.
func (s *Store) Snapshot() error {
	if s.isClosed() {
		return ErrClosed
	}
	err := s.raft.Snapshot().Error()
	if err == nil || errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return fmt.Errorf("raftstore: snapshot: %w", err)
}

// Stats returns raft's statistics plus the store's.
func (s *Store) Stats() map[string]string {
	st := s.raft.Stats()
	st["applied_index_fsm"] = strconv.FormatUint(s.AppliedIndex(), 10)
	st["records"] = strconv.Itoa(s.fsm.state().records.Len())
	st["requests_remembered"] = strconv.Itoa(s.fsm.state().requests.Len())
	s.leaderMu.Lock()
	st["ready_for_consistent_reads"] = strconv.FormatBool(s.ready)
	s.leaderMu.Unlock()
	return st
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Close shuts raft down cleanly, closes the transport it created (and the
// Listener) and the log store. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.leaderMu.Lock()
		close(s.closed)
		s.leaderMu.Unlock()
		errs := []error{s.raft.Shutdown().Error()}
		s.wg.Wait()
		if s.ownTrans != nil {
			errs = append(errs, s.ownTrans.Close())
		}
		errs = append(errs, s.bolt.Close())
		s.leaderMu.Lock()
		s.ready = false
		for ch := range s.leaderSubs {
			close(ch)
		}
		s.leaderSubs = nil
		s.leaderMu.Unlock()
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("raftstore: close: %w", err)
		}
	})
	return s.closeErr
}

// noPipeline is the network transport without pipelined replication.
// hashicorp/raft's pipeline can deadlock: when a follower answers an
// AppendEntries with Success=false, pipelineDecode returns and nothing reads
// the pipeline's responses any more; the next pipelineSend then blocks for
// good, so that follower never receives another entry (heartbeats go on, so
// no election heals it) and Raft.Shutdown never returns (seen here: a test
// cluster's Close hanging 17 minutes; grafana/pyroscope#5518 describes the
// same). Without a pipeline, raft replicates with one AppendEntries in
// flight per follower, each carrying up to MaxAppendEntries entries.
type noPipeline struct {
	*raft.NetworkTransport
}

// AppendEntriesPipeline makes raft use synchronous replication.
func (noPipeline) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}
