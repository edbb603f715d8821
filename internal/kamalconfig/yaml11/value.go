// Package yaml11 loads YAML the way Ruby's Psych does for Kamal: YAML 1.1
// scalars (yes/no/on/off booleans, 0755 octals, 1:30 sexagesimals,
// :symbols), merge keys with Psych's precedence, and a bounded alias
// expansion. The result is a Value tree that keeps every key's and value's
// file position, plus the Ruby semantics Kamal's code relies on (truthiness,
// present?, to_s, deep_merge!).
package yaml11

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind is the Ruby class a YAML value becomes once Psych has loaded it.
type Kind int

// The kinds a loaded value can take.
const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindFloat
	KindString
	KindSymbol
	KindSeq
	KindMap
)

// Pos is where a value came from.
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string {
	if p.File == "" {
		return ""
	}
	if p.Line == 0 {
		return p.File
	}
	if p.Column == 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Value is one loaded YAML value with its position: Kamal's raw_config.
type Value struct {
	Kind   Kind
	Bool   bool
	Int    int64
	Float  float64
	Str    string // string and symbol text; also the source text of scalars
	Seq    []*Value
	Keys   []string // map keys in order
	Map    map[string]*Value
	KeyPos map[string]Pos
	Pos    Pos
}

// Get returns the map entry for key, or nil.
func (v *Value) Get(key string) *Value {
	if v == nil || v.Kind != KindMap {
		return nil
	}
	return v.Map[key]
}

// Has reports whether the map has key (even with a null value).
func (v *Value) Has(key string) bool {
	if v == nil || v.Kind != KindMap {
		return false
	}
	_, ok := v.Map[key]
	return ok
}

// IsNull reports a missing or null value.
func (v *Value) IsNull() bool { return v == nil || v.Kind == KindNull }

// Truthy is Ruby truthiness: everything but nil and false.
func (v *Value) Truthy() bool {
	if v == nil || v.Kind == KindNull {
		return false
	}
	if v.Kind == KindBool {
		return v.Bool
	}
	return true
}

// IsFalse reports a literal false.
func (v *Value) IsFalse() bool { return v != nil && v.Kind == KindBool && !v.Bool }

// IsTrue reports a literal true.
func (v *Value) IsTrue() bool { return v != nil && v.Kind == KindBool && v.Bool }

// Present is ActiveSupport's present?: not nil, not false, not empty or blank.
func (v *Value) Present() bool {
	if !v.Truthy() {
		return false
	}
	switch v.Kind {
	case KindString:
		return strings.TrimSpace(v.Str) != ""
	case KindSeq:
		return len(v.Seq) > 0
	case KindMap:
		return len(v.Keys) > 0
	}
	return true
}

// Blank is !Present.
func (v *Value) Blank() bool { return !v.Present() }

// Stringish mirrors the validator's stringish?: strings, symbols, numbers, booleans.
func (v *Value) Stringish() bool {
	if v == nil {
		return false
	}
	switch v.Kind {
	case KindString, KindSymbol, KindInt, KindFloat, KindBool:
		return true
	}
	return false
}

// S is Ruby's to_s for scalars ("" for nil).
func (v *Value) S() string {
	if v == nil {
		return ""
	}
	switch v.Kind {
	case KindNull:
		return ""
	case KindBool:
		if v.Bool {
			return "true"
		}
		return "false"
	case KindInt:
		return strconv.FormatInt(v.Int, 10)
	case KindFloat:
		return rubyFloat(v.Float)
	case KindString, KindSymbol:
		return v.Str
	case KindSeq:
		parts := make([]string, len(v.Seq))
		for i, e := range v.Seq {
			parts[i] = e.inspect()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case KindMap:
		parts := make([]string, 0, len(v.Keys))
		for _, k := range v.Keys {
			parts = append(parts, strconv.Quote(k)+" => "+v.Map[k].inspect())
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return ""
}

func (v *Value) inspect() string {
	if v == nil || v.Kind == KindNull {
		return "nil"
	}
	if v.Kind == KindString {
		return strconv.Quote(v.Str)
	}
	if v.Kind == KindSymbol {
		return ":" + v.Str
	}
	return v.S()
}

// Strings returns the to_s of each element of a sequence (or the scalar alone).
func (v *Value) Strings() []string {
	if v.IsNull() {
		return nil
	}
	if v.Kind != KindSeq {
		return []string{v.S()}
	}
	out := make([]string, 0, len(v.Seq))
	for _, e := range v.Seq {
		out = append(out, e.S())
	}
	return out
}

// IntOr returns the integer value or def when unset.
func (v *Value) IntOr(def int64) int64 {
	if v == nil || v.Kind == KindNull {
		return def
	}
	switch v.Kind {
	case KindInt:
		return v.Int
	case KindFloat:
		return int64(v.Float)
	case KindString:
		n, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64)
		if err == nil {
			return n
		}
	}
	return def
}

func rubyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	abs := math.Abs(f)
	if abs >= 1e16 || abs < 1e-4 {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		mant, exp, _ := strings.Cut(s, "e")
		if !strings.Contains(mant, ".") {
			mant += ".0"
		}
		if exp[0] == '+' {
			exp = "+" + strings.TrimLeft(exp[1:], "0")
		} else {
			exp = "-" + strings.TrimLeft(exp[1:], "0")
		}
		return mant + "e" + exp
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Clone deep-copies a value.
func (v *Value) Clone() *Value {
	if v == nil {
		return nil
	}
	c := *v
	if v.Seq != nil {
		c.Seq = make([]*Value, len(v.Seq))
		for i, e := range v.Seq {
			c.Seq[i] = e.Clone()
		}
	}
	if v.Map != nil {
		c.Keys = append([]string(nil), v.Keys...)
		c.Map = make(map[string]*Value, len(v.Map))
		c.KeyPos = make(map[string]Pos, len(v.KeyPos))
		for k, e := range v.Map {
			c.Map[k] = e.Clone()
		}
		for k, p := range v.KeyPos {
			c.KeyPos[k] = p
		}
	}
	return &c
}

// NewMap returns an empty map value.
func NewMap() *Value {
	return &Value{Kind: KindMap, Map: map[string]*Value{}, KeyPos: map[string]Pos{}}
}

// Set sets key, keeping the first position of an existing key.
func (v *Value) Set(key string, val *Value, pos Pos) {
	if _, ok := v.Map[key]; !ok {
		v.Keys = append(v.Keys, key)
		v.KeyPos[key] = pos
	}
	v.Map[key] = val
}

// Delete removes key.
func (v *Value) Delete(key string) {
	if _, ok := v.Map[key]; !ok {
		return
	}
	delete(v.Map, key)
	delete(v.KeyPos, key)
	for i, k := range v.Keys {
		if k == key {
			v.Keys = append(v.Keys[:i:i], v.Keys[i+1:]...)
			break
		}
	}
}

// DeepMerge is ActiveSupport's deep_merge!: hashes merge recursively, any
// other value in other replaces the receiver's.
func DeepMerge(base, other *Value) *Value {
	if base == nil || base.Kind != KindMap || other == nil || other.Kind != KindMap {
		return other.Clone()
	}
	out := base.Clone()
	for _, k := range other.Keys {
		ov := other.Map[k]
		if bv, ok := out.Map[k]; ok && bv != nil && bv.Kind == KindMap && ov != nil && ov.Kind == KindMap {
			out.Map[k] = DeepMerge(bv, ov)
			continue
		}
		out.Set(k, ov.Clone(), other.KeyPos[k])
	}
	return out
}
