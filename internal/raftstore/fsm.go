package raftstore

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	iradix "github.com/hashicorp/go-immutable-radix"
	"github.com/hashicorp/raft"
	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/auditchain"
	"github.com/kctl-dev/kctl/internal/protocol"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Log entry framing: one type byte, then the message.
const (
	// entryCommand is a raftcmdv1.Command.
	entryCommand byte = 1
	// entryIgnoreUnknown, set on the type byte, lets a replica that does not
	// know the type skip the entry instead of panicking.
	entryIgnoreUnknown byte = 0x80
)

// RequestRetention is how long (in command time) a request_id is remembered
// for deduplication.
const RequestRetention = 24 * time.Hour

// MaxCommandBytes bounds one encoded command.
const MaxCommandBytes = 8 << 20

const snapshotMagic = "KCTLRS1\n"

// snapshotFormat is the snapshot stream's format (SnapshotHeader.format).
const snapshotFormat = 1

// requestEntry remembers the result of a command that carried a request_id.
type requestEntry struct {
	unixNanos int64
	result    *raftcmdv1.Result
}

// fsm is the raft.FSM (and raft.BatchingFSM). It is a thin dispatcher: decode
// the entry, apply the command to a transaction over the current immutable
// state, publish the new state.
type fsm struct {
	// mu guards cur. Apply and Restore replace cur; readers load it.
	mu  sync.RWMutex
	cur *state

	// onApply is called after every published state change (outside mu).
	onApply func()
	// puts remembers recent writes (Store.PutSince).
	puts putLog

	// halted is set when a committed entry needs a newer build (see
	// halt): from then on nothing is applied and no snapshot is taken, so
	// this replica never serves or persists a state it could not build.
	halted atomic.Pointer[error]
	// onHalt is called once when the FSM halts (may be nil).
	onHalt func(error)
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

func newFSM(onApply func()) *fsm {
	return &fsm{cur: emptyState(), onApply: onApply}
}

func (f *fsm) state() *state {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.cur
}

func (f *fsm) publish(s *state) {
	f.mu.Lock()
	f.cur = s
	f.mu.Unlock()
	if f.onApply != nil {
		f.onApply()
	}
}

// Apply applies one committed entry.
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one transaction and publishes the
// resulting state once. Responses are *raftcmdv1.Result for commands and nil
// for other entry types.
//
// An entry this build cannot understand (a newer command format, entry type
// or field) halts the FSM: the entries before it in the batch are applied,
// it and every later entry are not (their responses are nil), and the
// store refuses to serve (ErrIncompatible) until the controller is
// upgraded and restarted, when the log replays from the last snapshot.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	if f.halted.Load() != nil {
		return out
	}
	cur := f.state()
	tx := newTxn(cur)
	var haltErr error
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			res, err := tx.applyEntry(l.Index, l.Data)
			if err != nil {
				haltErr = err
				break
			}
			out[i] = res
		}
		tx.index = l.Index
	}
	st := tx.commit()
	// Log the puts before publishing: a reader that sees the new state
	// finds its puts in the log.
	f.puts.add(tx.puts)
	f.publish(st)
	if haltErr != nil {
		f.halt(haltErr)
	}
	return out
}

// halt stops the FSM for good (until a Restore it understands).
func (f *fsm) halt(err error) {
	if f.halted.CompareAndSwap(nil, &err) && f.onHalt != nil {
		f.onHalt(err)
	}
}

// haltErr returns why the FSM halted, or nil.
func (f *fsm) haltErr() error {
	if p := f.halted.Load(); p != nil {
		return *p
	}
	return nil
}

// needsUpgrade is a committed entry this build cannot understand.
type needsUpgrade struct {
	index uint64
	what  string
}

func (e *needsUpgrade) Error() string {
	return fmt.Sprintf("raftstore: log entry %d: %s: upgrade this controller (it stopped applying the log and serves nothing until then)", e.index, e.what)
}

func (e *needsUpgrade) Is(target error) bool { return target == ErrIncompatible }

// txn is a transaction over a state, spanning one batch of entries.
type txn struct {
	records, requests, expiry *iradix.Txn
	index                     uint64
	// puts are the keys written, in order (for the put log).
	puts []putEntry
}

func newTxn(s *state) *txn {
	return &txn{records: s.records.Txn(), requests: s.requests.Txn(), expiry: s.expiry.Txn(), index: s.index}
}

func (t *txn) commit() *state {
	return &state{records: t.records.Commit(), requests: t.requests.Commit(), expiry: t.expiry.Commit(), index: t.index}
}

// applyEntry decodes and applies one command entry. An entry that cannot be
// decoded panics: skipping it would make this replica diverge from the others.
// One that a newer build wrote (unknown type, field or format) returns a
// *needsUpgrade error and changes nothing.
func (t *txn) applyEntry(index uint64, data []byte) (*raftcmdv1.Result, error) {
	if len(data) == 0 {
		panic(fmt.Sprintf("raftstore: empty log entry at index %d", index))
	}
	typ := data[0]
	if typ&^entryIgnoreUnknown != entryCommand {
		if typ&entryIgnoreUnknown != 0 {
			return &raftcmdv1.Result{Index: index, Conflict: fmt.Sprintf("ignored unknown entry type %d", typ&^entryIgnoreUnknown)}, nil
		}
		return nil, &needsUpgrade{index, fmt.Sprintf("unknown entry type %d", typ)}
	}
	cmd := new(raftcmdv1.Command)
	if err := proto.Unmarshal(data[1:], cmd); err != nil {
		panic(fmt.Sprintf("raftstore: undecodable command at index %d: %v", index, err))
	}
	if err := checkFormat(cmd); err != nil {
		return nil, &needsUpgrade{index, err.Error()}
	}
	return t.applyCommand(index, cmd)
}

// checkFormat refuses a command whose format is newer than this build.
func checkFormat(cmd *raftcmdv1.Command) error {
	if f := protocol.Normalize(cmd.GetFormat()); f > protocol.Current() {
		return fmt.Errorf("command format %d is newer than this build's protocol version %d", f, protocol.Current())
	}
	return nil
}

func (t *txn) applyCommand(index uint64, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	if id := cmd.GetRequestId(); id != "" {
		if v, ok := t.requests.Get([]byte(id)); ok {
			return proto.Clone(v.(*requestEntry).result).(*raftcmdv1.Result), nil
		}
	}
	if err := checkCommand(cmd); err != nil {
		var u *unknownError
		if errors.As(err, &u) {
			return nil, &needsUpgrade{index, "command " + u.Error()}
		}
	}
	res := t.apply(index, cmd)
	if id := cmd.GetRequestId(); id != "" {
		t.remember(id, cmd.GetUnixNanos(), res)
	}
	return res, nil
}

func (t *txn) apply(index uint64, cmd *raftcmdv1.Command) *raftcmdv1.Result {
	res := &raftcmdv1.Result{Index: index}
	if err := checkCommand(cmd); err != nil {
		res.Conflict = "invalid command: " + err.Error()
		return res
	}
	for i, p := range cmd.GetPreconditions() {
		if c := t.check(p); c != "" {
			res.Conflict = fmt.Sprintf("precondition %d (%s/%s): %s", i, p.GetTable(), p.GetKey(), c)
			return res
		}
	}
	appends := 0
	for _, m := range cmd.GetMutations() {
		switch op := m.GetOp().(type) {
		case *raftcmdv1.Mutation_Put:
			t.put(index, op.Put.GetTable(), op.Put.GetKey(), op.Put.GetValue())
		case *raftcmdv1.Mutation_Delete:
			t.records.Delete(tableKey(op.Delete.GetTable(), op.Delete.GetKey()))
		case *raftcmdv1.Mutation_Append:
			key := AppendKey(index, appends)
			appends++
			value := op.Append.GetValue()
			if op.Append.GetChain() {
				value = t.chain(index, op.Append.GetTable(), value)
			}
			t.put(index, op.Append.GetTable(), key, value)
			res.AppendedKeys = append(res.AppendedKeys, key)
		case *raftcmdv1.Mutation_DeletePrefix:
			t.records.DeletePrefix(tableKey(op.DeletePrefix.GetTable(), op.DeletePrefix.GetPrefix()))
		default:
			// Unknown op, ignore_unknown set (checkCommand let it through).
		}
	}
	res.Applied = true
	return res
}

// ChainHeads is the table holding, under a chained table's name, its
// raftcmdv1.ChainHead.
const ChainHeads = "chain-heads"

// chain links value into table's hash chain (Append.chain): it returns the
// encoded ChainLink to store and advances the table's head. Deterministic:
// the head is part of the replicated state.
func (t *txn) chain(index uint64, table string, value []byte) []byte {
	head := &raftcmdv1.ChainHead{Hash: auditchain.Genesis}
	if v, ok := t.records.Get(tableKey(ChainHeads, table)); ok {
		if err := proto.Unmarshal(v.(*Record).Value, head); err != nil {
			panic(fmt.Sprintf("raftstore: undecodable chain head of %s: %v", table, err))
		}
	}
	link := &raftcmdv1.ChainLink{Seq: head.GetSeq() + 1, PrevHash: head.GetHash(), Value: value}
	link.Hash = auditchain.LinkHash(link.Seq, link.PrevHash, value)
	t.put(index, ChainHeads, table, mustMarshal(&raftcmdv1.ChainHead{Seq: link.Seq, Hash: link.Hash}))
	return mustMarshal(link)
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("raftstore: encode %T: %v", m, err))
	}
	return b
}

// AppendKey is the key an Append mutation at position pos of the command at
// log index index is stored under.
func AppendKey(index uint64, pos int) string {
	return fmt.Sprintf("%020d-%06d", index, pos)
}

func (t *txn) put(index uint64, table, key string, value []byte) {
	k := tableKey(table, key)
	rec := &Record{Table: table, Key: key, Value: value, CreateIndex: index, ModifyIndex: index}
	if old, ok := t.records.Get(k); ok {
		rec.CreateIndex = old.(*Record).CreateIndex
	}
	t.records.Insert(k, rec)
	t.puts = append(t.puts, putEntry{index: index, table: table, key: key})
}

// check returns "" when p holds, else why not.
func (t *txn) check(p *raftcmdv1.Precondition) string {
	v, ok := t.records.Get(tableKey(p.GetTable(), p.GetKey()))
	switch c := p.GetCheck().(type) {
	case *raftcmdv1.Precondition_Version:
		switch {
		case c.Version == 0 && ok:
			return fmt.Sprintf("want absent, have version %d", v.(*Record).ModifyIndex)
		case c.Version == 0:
			return ""
		case !ok:
			return fmt.Sprintf("want version %d, record absent", c.Version)
		case v.(*Record).ModifyIndex != c.Version:
			return fmt.Sprintf("want version %d, have version %d", c.Version, v.(*Record).ModifyIndex)
		}
	case *raftcmdv1.Precondition_Absent:
		if ok {
			return fmt.Sprintf("want absent, have version %d", v.(*Record).ModifyIndex)
		}
	case *raftcmdv1.Precondition_Present:
		if !ok {
			return "want present, record absent"
		}
	}
	return ""
}

// remember records a request_id's result and prunes entries older than
// RequestRetention in command time (deterministic: every replica sees the
// same unix_nanos).
func (t *txn) remember(id string, unixNanos int64, res *raftcmdv1.Result) {
	// Keep a copy: res is handed to the caller, who may modify it.
	t.requests.Insert([]byte(id), &requestEntry{unixNanos: unixNanos, result: proto.Clone(res).(*raftcmdv1.Result)})
	t.expiry.Insert(expiryKey(unixNanos, id), nil)

	cutoff := expiryKey(unixNanos-int64(RequestRetention), "")
	var old [][]byte
	it := t.expiry.Root().Iterator()
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		if string(k) >= string(cutoff) {
			break
		}
		old = append(old, k)
	}
	for _, k := range old {
		t.expiry.Delete(k)
		t.requests.Delete(k[9:])
	}
}

// expiryKey orders requests by time: 8 big-endian bytes of the (clamped)
// time, a NUL, the request_id.
func expiryKey(unixNanos int64, id string) []byte {
	if unixNanos < 0 {
		unixNanos = 0
	}
	b := make([]byte, 9, 9+len(id))
	binary.BigEndian.PutUint64(b, uint64(unixNanos))
	return append(b, id...)
}

// unknownError reports protobuf content this build does not know: fields a
// newer controller wrote.
type unknownError struct{ where string }

func (e *unknownError) Error() string { return e.where + " has fields unknown to this build" }

// hasUnknown reports whether m or any message inside it carries unknown
// fields.
func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = hasUnknown(l.Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			found = hasUnknown(v.Message())
		}
		return !found
	})
	return found
}

// checkCommand validates a command's shape, for the leader before proposing
// and for the FSM before applying. Unknown content (a field, precondition or
// mutation this build does not know) is an *unknownError unless the command
// sets ignore_unknown; then unknown preconditions and mutations are skipped
// and unknown fields ignored.
func checkCommand(cmd *raftcmdv1.Command) error {
	ignore := cmd.GetIgnoreUnknown()
	if !ignore && hasUnknown(cmd.ProtoReflect()) {
		return &unknownError{"command"}
	}
	if len(cmd.GetMutations()) == 0 {
		return errors.New("no mutations")
	}
	for i, p := range cmd.GetPreconditions() {
		if p.GetCheck() == nil {
			if len(p.ProtoReflect().GetUnknown()) > 0 {
				continue // unknown check, ignore_unknown set
			}
			return fmt.Errorf("precondition %d: no check", i)
		}
		if invalidTable(p.GetTable()) {
			return fmt.Errorf("precondition %d: invalid table %q", i, p.GetTable())
		}
	}
	for i, m := range cmd.GetMutations() {
		var table string
		switch op := m.GetOp().(type) {
		case *raftcmdv1.Mutation_Put:
			table = op.Put.GetTable()
		case *raftcmdv1.Mutation_Delete:
			table = op.Delete.GetTable()
		case *raftcmdv1.Mutation_Append:
			table = op.Append.GetTable()
		case *raftcmdv1.Mutation_DeletePrefix:
			table = op.DeletePrefix.GetTable()
		default:
			if len(m.ProtoReflect().GetUnknown()) > 0 {
				continue // unknown op, ignore_unknown set
			}
			return fmt.Errorf("mutation %d: no op", i)
		}
		if invalidTable(table) {
			return fmt.Errorf("mutation %d: invalid table %q", i, table)
		}
	}
	return nil
}

// Snapshot captures the current immutable state: O(1), no copying.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.haltErr(); err != nil {
		// The state lags raft's applied index: never persist it.
		return nil, err
	}
	return &fsmSnapshot{st: f.state()}, nil
}

// Restore replaces the whole state with the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc)
	if err != nil {
		if errors.Is(err, ErrIncompatible) {
			f.halt(err)
		}
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	f.puts.reset(st.index)
	f.publish(st)
	f.halted.Store(nil) // a state this build understands replaces it all
	return nil
}

type fsmSnapshot struct{ st *state }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.st); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftstore: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// writeSnapshot writes the snapshot stream (see raftcmd.proto) of st.
// The output is a deterministic function of the state.
func writeSnapshot(w io.Writer, st *state) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	opts := protodelim.MarshalOptions{MarshalOptions: proto.MarshalOptions{Deterministic: true}}
	hdr := &raftcmdv1.SnapshotHeader{Format: snapshotFormat, AppliedIndex: st.index, Records: uint64(st.records.Len()), Requests: uint64(st.requests.Len())}
	if _, err := opts.MarshalTo(bw, hdr); err != nil {
		return err
	}
	var err error
	st.records.Root().Walk(func(_ []byte, v interface{}) bool {
		r := v.(*Record)
		_, err = opts.MarshalTo(bw, &raftcmdv1.SnapshotRecord{Table: r.Table, Key: r.Key, Value: r.Value, CreateIndex: r.CreateIndex, ModifyIndex: r.ModifyIndex})
		return err != nil
	})
	if err != nil {
		return err
	}
	st.requests.Root().Walk(func(k []byte, v interface{}) bool {
		e := v.(*requestEntry)
		_, err = opts.MarshalTo(bw, &raftcmdv1.SnapshotRequest{RequestId: string(k), UnixNanos: e.unixNanos, Result: e.result})
		return err != nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func readSnapshot(r io.Reader) (*state, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("read magic: %w", err)
	}
	if string(magic) != snapshotMagic {
		return nil, fmt.Errorf("not a raftstore snapshot (magic %q)", magic)
	}
	opts := protodelim.UnmarshalOptions{MaxSize: MaxCommandBytes * 2}
	hdr := new(raftcmdv1.SnapshotHeader)
	if err := opts.UnmarshalFrom(br, hdr); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if hdr.GetFormat() != snapshotFormat {
		return nil, fmt.Errorf("%w: snapshot format %d, this build reads format %d: upgrade this controller", ErrIncompatible, hdr.GetFormat(), snapshotFormat)
	}
	st := emptyState()
	records, requests, expiry := st.records.Txn(), st.requests.Txn(), st.expiry.Txn()
	for i := uint64(0); i < hdr.GetRecords(); i++ {
		m := new(raftcmdv1.SnapshotRecord)
		if err := opts.UnmarshalFrom(br, m); err != nil {
			return nil, fmt.Errorf("read record %d of %d: %w", i, hdr.GetRecords(), err)
		}
		if invalidTable(m.GetTable()) {
			return nil, fmt.Errorf("record %d: invalid table %q", i, m.GetTable())
		}
		records.Insert(tableKey(m.GetTable(), m.GetKey()), &Record{Table: m.GetTable(), Key: m.GetKey(), Value: m.GetValue(), CreateIndex: m.GetCreateIndex(), ModifyIndex: m.GetModifyIndex()})
	}
	for i := uint64(0); i < hdr.GetRequests(); i++ {
		m := new(raftcmdv1.SnapshotRequest)
		if err := opts.UnmarshalFrom(br, m); err != nil {
			return nil, fmt.Errorf("read request %d of %d: %w", i, hdr.GetRequests(), err)
		}
		requests.Insert([]byte(m.GetRequestId()), &requestEntry{unixNanos: m.GetUnixNanos(), result: m.GetResult()})
		expiry.Insert(expiryKey(m.GetUnixNanos(), m.GetRequestId()), nil)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, errors.New("trailing data after the last request")
	}
	return &state{records: records.Commit(), requests: requests.Commit(), expiry: expiry.Commit(), index: hdr.GetAppliedIndex()}, nil
}

// stateHash is the SHA-256 of st's snapshot stream.
func stateHash(st *state) [32]byte {
	h := sha256.New()
	if err := writeSnapshot(h, st); err != nil {
		panic(err) // hash.Hash writes never fail
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
