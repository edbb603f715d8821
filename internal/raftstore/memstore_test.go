package raftstore_test

import (
	"context"
	"strings"
	"testing"

	raftcmdv1 "github.com/kctl-dev/kctl/gen/kctl/raftcmd/v1"
	"github.com/kctl-dev/kctl/internal/raftstore"
)

func TestMemStore_AppliesLikeTheFSM(t *testing.T) {
	m := raftstore.NewMemStore()
	ch, stop := m.Watch()
	defer stop()
	ctx := context.Background()
	put := &raftcmdv1.Command{
		Preconditions: []*raftcmdv1.Precondition{{Table: "t", Key: "k", Check: &raftcmdv1.Precondition_Absent{Absent: true}}},
		Mutations:     []*raftcmdv1.Mutation{{Op: &raftcmdv1.Mutation_Put{Put: &raftcmdv1.Put{Table: "t", Key: "k", Value: []byte("v1")}}}},
	}
	res, err := m.Apply(ctx, put)
	if err != nil || !res.GetApplied() || res.GetIndex() != 1 {
		t.Fatalf("Apply(put if absent) = %v, %v; want applied at index 1", res, err)
	}
	select {
	case <-ch:
	default:
		t.Error("Watch did not fire after Apply")
	}
	if res, err := m.Apply(ctx, put); err != nil || res.GetApplied() {
		t.Errorf("second Apply(put if absent) = %v, %v; want a precondition conflict", res, err)
	}
	if r, ok := m.Get("t", "k"); !ok || string(r.Value) != "v1" || r.ModifyIndex != 1 {
		t.Errorf("Get(t, k) = %+v, %v; want v1 at index 1", r, ok)
	}
	if keys, ok := m.PutSince("t", 0); !ok || len(keys) != 1 || keys[0] != "k" {
		t.Errorf("PutSince(t, 0) = %v, %v; want [k]", keys, ok)
	}
	if _, err := m.Apply(ctx, &raftcmdv1.Command{}); err == nil {
		t.Error("Apply(empty command) succeeded, want ErrInvalidCommand")
	}
}

func TestSnapshot_EachVisitsEveryTable(t *testing.T) {
	m := raftstore.NewMemStore()
	put := func(table, key string) *raftcmdv1.Mutation {
		return &raftcmdv1.Mutation{Op: &raftcmdv1.Mutation_Put{Put: &raftcmdv1.Put{Table: table, Key: key, Value: []byte(table + "/" + key)}}}
	}
	if _, err := m.Apply(context.Background(), &raftcmdv1.Command{Mutations: []*raftcmdv1.Mutation{put("b", "2"), put("a", "1"), put("b", "1"), put("ab", "x")}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	m.View().Each(func(table string, r raftstore.Record) bool {
		got = append(got, table+":"+r.Key+"="+string(r.Value))
		return true
	})
	want := []string{"a:1=a/1", "ab:x=ab/x", "b:1=b/1", "b:2=b/2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Each visited %v, want %v", got, want)
	}
	n := 0
	m.View().Each(func(string, raftstore.Record) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("Each went on after fn returned false: %d calls, want 2", n)
	}
}
