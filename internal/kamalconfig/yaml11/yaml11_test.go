package yaml11

import (
	"reflect"
	"testing"
)

func TestYAML11Scalars(t *testing.T) {
	v, err := Parse("x.yml", []byte("a: 10_000_000\nb: yes\nc: off\nd: 0755\ne: 1:30\nf: '10_000'\ng: 1.10\nh: ~\ni: :sym\nj: 0x1F\nk: 1,000\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(k string, kind Kind, s string) {
		t.Helper()
		got := v.Get(k)
		if got.Kind != kind || got.S() != s {
			t.Errorf("%s: got kind %d %q, want kind %d %q", k, got.Kind, got.S(), kind, s)
		}
	}
	check("a", KindInt, "10000000")
	check("b", KindBool, "true")
	check("c", KindBool, "false")
	check("d", KindInt, "493")
	check("e", KindInt, "90")
	check("f", KindString, "10_000")
	check("g", KindFloat, "1.1")
	check("h", KindNull, "")
	check("i", KindSymbol, "sym")
	check("j", KindInt, "31")
	check("k", KindInt, "1000")
}

func TestYAMLMergeKeysAndAnchors(t *testing.T) {
	v, err := Parse("x.yml", []byte(`x-base: &base
  a: 1
  b: 2
m:
  b: 0
  <<: *base
  c: 3
n:
  <<: [*base, {a: 9, d: 4}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := v.Get("m")
	if !reflect.DeepEqual(m.Keys, []string{"b", "a", "c"}) || m.Get("b").Int != 2 {
		t.Errorf("merge keeps Psych semantics: keys %v b=%v", m.Keys, m.Get("b").S())
	}
	if v.Get("n").Get("a").Int != 1 || v.Get("n").Get("d").Int != 4 {
		t.Errorf("sequence merge: %v", v.Get("n").S())
	}
}

func TestDeepMergeRules(t *testing.T) {
	a, _ := Parse("a", []byte("env:\n  clear: {A: 1, B: 2}\n  secret: [X]\nlist: [1, 2]\ns: a\n"), nil)
	b, _ := Parse("b", []byte("env:\n  clear: {B: 3}\n  secret: [Y]\nlist: [3]\n"), nil)
	m := DeepMerge(a, b)
	if m.Get("env").Get("clear").Get("A").Int != 1 || m.Get("env").Get("clear").Get("B").Int != 3 {
		t.Errorf("hashes merge recursively: %s", m.Get("env").S())
	}
	if got := m.Get("env").Get("secret").Strings(); !reflect.DeepEqual(got, []string{"Y"}) {
		t.Errorf("arrays replace: got %v", got)
	}
	if got := m.Get("list").Strings(); !reflect.DeepEqual(got, []string{"3"}) {
		t.Errorf("arrays replace: got %v", got)
	}
	if m.Get("s").S() != "a" {
		t.Errorf("untouched scalar kept")
	}
}
