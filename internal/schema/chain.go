package schema

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

// Chain is an append-only table whose values the store hash-chains (see
// raftcmd's ChainLink and internal/auditchain): each appended value gets
// the next sequence number and the hash of the link before it, assigned in
// the state machine, so every replica holds the same chain.
type Chain[M proto.Message] struct {
	name string
	// legacy is the plain table that held values before the chain existed;
	// its values are read before the chain's and are not covered by it.
	legacy Table[M]
}

// ChainRow is one decoded link.
type ChainRow[M proto.Message] struct {
	Key   string
	Link  *raftcmdv1.ChainLink // raw: Link.Value is the encoded M
	Value M
}

// Unchain rewrites cmd's chained appends as plain appends to the chains'
// legacy tables, for a cluster that still has controllers of a build that
// predates chains (they refuse a chained Append): the entries stay readable
// (Chain.Legacy) and the chain starts once every controller is upgraded.
func Unchain(cmd *raftcmdv1.Command) {
	for _, m := range cmd.GetMutations() {
		if a := m.GetAppend(); a != nil && a.GetChain() && a.GetTable() == Audit.name {
			a.Table, a.Chain = Audit.legacy.name, false
		}
	}
}

// Name is the chain's table name.
func (c Chain[M]) Name() string { return c.name }

// Append is the mutation appending m to the chain.
func (c Chain[M]) Append(m M) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Append{Append: &raftcmdv1.Append{Table: c.name, Value: encode(m), Chain: true}}}
}

// Delete is the mutation deleting the link under key (retention).
func (c Chain[M]) Delete(key string) *raftcmdv1.Mutation {
	return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Delete{Delete: &raftcmdv1.Delete{Table: c.name, Key: key}}}
}

// IfPresent is the precondition that the link under key is stored.
func (c Chain[M]) IfPresent(key string) *raftcmdv1.Precondition {
	return &raftcmdv1.Precondition{Table: c.name, Key: key, Check: &raftcmdv1.Precondition_Present{Present: true}}
}

// Rows lists the links in chain order, decoded. A link that does not decode
// is a bug (or a tampered store): Rows panics, as Table.Decode does.
func (c Chain[M]) Rows(r Reader) []ChainRow[M] {
	recs := r.List(c.name, "")
	out := make([]ChainRow[M], len(recs))
	for i, rec := range recs {
		link := new(raftcmdv1.ChainLink)
		if err := proto.Unmarshal(rec.Value, link); err != nil {
			panic(fmt.Sprintf("schema: decode %s/%s: %v", c.name, rec.Key, err))
		}
		out[i] = ChainRow[M]{Key: rec.Key, Link: link, Value: c.legacy.Decode(raftstore.Record{Key: rec.Key, Value: link.GetValue()})}
	}
	return out
}

// Legacy lists the values written before the chain existed, oldest first.
func (c Chain[M]) Legacy(r Reader) []M { return c.legacy.Values(r, "") }

// Head returns the chain's last sequence number and hash (0 and nil when
// empty).
func (c Chain[M]) Head(r Reader) (uint64, []byte) {
	rec, ok := r.Get(raftstore.ChainHeads, c.name)
	if !ok {
		return 0, nil
	}
	h := new(raftcmdv1.ChainHead)
	if err := proto.Unmarshal(rec.Value, h); err != nil {
		panic(fmt.Sprintf("schema: decode chain head %s: %v", c.name, err))
	}
	return h.GetSeq(), h.GetHash()
}
