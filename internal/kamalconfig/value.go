package kamalconfig

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
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

// ---- YAML (Psych, YAML 1.1) ----

// maxAliasExpansions bounds alias expansion (billion laughs).
const maxAliasExpansions = 100000

type yamlConverter struct {
	file       string
	lineMap    []int // rendered line -> source line (1-based), optional
	expansions int
}

func (c *yamlConverter) pos(n *yaml.Node) Pos {
	line := n.Line
	if c.lineMap != nil && line > 0 && line <= len(c.lineMap) {
		line = c.lineMap[line-1]
	}
	return Pos{File: c.file, Line: line, Column: n.Column}
}

// ParseYAML loads text the way Psych's unsafe_load does for Kamal, keeping
// positions. lineMap optionally maps rendered lines back to template lines.
func ParseYAML(file string, text []byte, lineMap []int) (*Value, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		pos := Pos{File: file}
		if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			if lineMap != nil && line > 0 && line <= len(lineMap) {
				line = lineMap[line-1]
			}
			pos.Line = line
			msg = strings.TrimPrefix(msg, m[0])
		}
		return nil, &Error{Pos: pos, Msg: "YAML syntax error: " + msg, Kind: "Psych::SyntaxError", Err: ErrConfig}
	}
	c := &yamlConverter{file: file, lineMap: lineMap}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return &Value{Kind: KindNull, Pos: Pos{File: file}}, nil
	}
	return c.convert(doc.Content[0], 0)
}

func (c *yamlConverter) convert(n *yaml.Node, depth int) (*Value, error) {
	if depth > 200 {
		return nil, &Error{Pos: c.pos(n), Msg: "YAML nesting too deep"}
	}
	c.expansions++
	if c.expansions > maxAliasExpansions {
		return nil, &Error{Pos: c.pos(n), Msg: "YAML document expands too many aliases"}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return &Value{Kind: KindNull, Pos: c.pos(n)}, nil
		}
		return c.convert(n.Content[0], depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, &Error{Pos: c.pos(n), Msg: "unknown YAML alias"}
		}
		v, err := c.convert(n.Alias, depth+1)
		if err != nil {
			return nil, err
		}
		return v, nil
	case yaml.ScalarNode:
		v := resolveScalar(n)
		v.Pos = c.pos(n)
		return v, nil
	case yaml.SequenceNode:
		v := &Value{Kind: KindSeq, Pos: c.pos(n), Seq: []*Value{}}
		for _, e := range n.Content {
			ev, err := c.convert(e, depth+1)
			if err != nil {
				return nil, err
			}
			v.Seq = append(v.Seq, ev)
		}
		return v, nil
	case yaml.MappingNode:
		v := NewMap()
		v.Pos = c.pos(n)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Kind == yaml.ScalarNode && kn.Value == "<<" && kn.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
				if err := c.merge(v, vn, depth); err != nil {
					return nil, err
				}
				continue
			}
			kv, err := c.convert(kn, depth+1)
			if err != nil {
				return nil, err
			}
			val, err := c.convert(vn, depth+1)
			if err != nil {
				return nil, err
			}
			key := kv.S()
			if kv.Kind == KindNull {
				key = ""
			}
			if _, ok := v.Map[key]; ok {
				v.Map[key] = val
				continue
			}
			v.Set(key, val, c.pos(kn))
		}
		return v, nil
	}
	return &Value{Kind: KindNull, Pos: c.pos(n)}, nil
}

// merge applies a `<<` merge key the way Psych's revive_hash does: the merged
// hash overwrites keys already present, later keys override it.
func (c *yamlConverter) merge(dst *Value, vn *yaml.Node, depth int) error {
	target := vn
	if target.Kind == yaml.AliasNode && target.Alias != nil {
		target = target.Alias
	}
	switch target.Kind {
	case yaml.MappingNode:
		mv, err := c.convert(target, depth+1)
		if err != nil {
			return err
		}
		for _, k := range mv.Keys {
			dst.Set(k, mv.Map[k], mv.KeyPos[k])
		}
		return nil
	case yaml.SequenceNode:
		acc := NewMap()
		for i := len(target.Content) - 1; i >= 0; i-- {
			mv, err := c.convert(target.Content[i], depth+1)
			if err != nil {
				return err
			}
			if mv.Kind != KindMap {
				continue
			}
			for _, k := range mv.Keys {
				acc.Set(k, mv.Map[k], mv.KeyPos[k])
			}
		}
		for _, k := range acc.Keys {
			dst.Set(k, acc.Map[k], acc.KeyPos[k])
		}
		return nil
	}
	// Psych keeps a non-mergeable value under the "<<" key.
	val, err := c.convert(vn, depth+1)
	if err != nil {
		return err
	}
	dst.Set("<<", val, c.pos(vn))
	return nil
}

var yamlLineRe = regexp.MustCompile(`^line (\d+): `)

var (
	reStringFast = regexp.MustCompile(`^[^\d.:-]?[[:alpha:]_\s!@#$%\^&*(){}<>|/\\~;=]+`)
	reNull       = regexp.MustCompile(`^(?i:null)$`)
	reTrue       = regexp.MustCompile(`^(?i:yes|true|on)$`)
	reFalse      = regexp.MustCompile(`^(?i:no|false|off)$`)
	reSexInt     = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}$`)
	reSexFloat   = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}\.[0-9_]*$`)
	reFloat      = regexp.MustCompile(`^[-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)?$`)
	reInfPos     = regexp.MustCompile(`^(?i:\+?\.inf)$`)
	reInfNeg     = regexp.MustCompile(`^(?i:-\.inf)$`)
	reNaN        = regexp.MustCompile(`^(?i:\.nan)$`)
	reIntBin     = regexp.MustCompile(`^[-+]?0b[0-1_,]+$`)
	reIntOct     = regexp.MustCompile(`^[-+]?0[0-7_,]+$`)
	reIntDec     = regexp.MustCompile(`^[-+]?(?:0|[1-9](?:[0-9]|,[0-9]|_[0-9])*)$`)
	reIntHex     = regexp.MustCompile(`^[-+]?0x[0-9a-fA-F_,]+$`)
	reDate       = regexp.MustCompile(`^\d{4}-(?:1[012]|0\d|\d)-(?:[12]\d|3[01]|0\d|\d)$`)
)

// resolveScalar reads a scalar as Psych's ScalarScanner (YAML 1.1) does.
func resolveScalar(n *yaml.Node) *Value {
	s := n.Value
	str := &Value{Kind: KindString, Str: s}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return str
	}
	if n.Style&yaml.TaggedStyle != 0 {
		switch n.Tag {
		case "!!str", "!binary", "!!binary":
			return str
		case "!!int":
			if v := parseRubyInt(s); v != nil {
				return v
			}
			return str
		case "!!float":
			if f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64); err == nil {
				return &Value{Kind: KindFloat, Float: f, Str: s}
			}
			return str
		case "!!null", "!!bool", "!!timestamp":
		default:
			return str
		}
	}
	return tokenize(s)
}

func tokenize(s string) *Value {
	str := &Value{Kind: KindString, Str: s}
	if s == "" || s == "~" {
		return &Value{Kind: KindNull, Str: s}
	}
	if reStringFast.MatchString(s) || strings.Contains(s, "\n") {
		if len(s) > 5 {
			return str
		}
		switch {
		case reNull.MatchString(s):
			return &Value{Kind: KindNull, Str: s}
		case reTrue.MatchString(s):
			return &Value{Kind: KindBool, Bool: true, Str: s}
		case reFalse.MatchString(s):
			return &Value{Kind: KindBool, Bool: false, Str: s}
		}
		return str
	}
	switch {
	case reDate.MatchString(s):
		return str // Date: kept as its text
	case reInfPos.MatchString(s):
		return &Value{Kind: KindFloat, Float: math.Inf(1), Str: s}
	case reInfNeg.MatchString(s):
		return &Value{Kind: KindFloat, Float: math.Inf(-1), Str: s}
	case reNaN.MatchString(s):
		return &Value{Kind: KindFloat, Float: math.NaN(), Str: s}
	case strings.HasPrefix(s, ":") && len(s) > 1:
		sym := s[1:]
		if len(sym) >= 2 && (sym[0] == '"' && sym[len(sym)-1] == '"' || sym[0] == '\'' && sym[len(sym)-1] == '\'') {
			sym = sym[1 : len(sym)-1]
		}
		return &Value{Kind: KindSymbol, Str: sym}
	case reSexInt.MatchString(s):
		neg := strings.HasPrefix(s, "-")
		t := strings.TrimLeft(s, "+-")
		var n int64
		for _, part := range strings.Split(strings.ReplaceAll(t, "_", ""), ":") {
			d, _ := strconv.ParseInt(part, 10, 64)
			n = n*60 + d
		}
		if neg {
			n = -n
		}
		return &Value{Kind: KindInt, Int: n, Str: s}
	case reSexFloat.MatchString(s):
		neg := strings.HasPrefix(s, "-")
		t := strings.TrimLeft(s, "+-")
		var f float64
		for _, part := range strings.Split(strings.ReplaceAll(t, "_", ""), ":") {
			d, _ := strconv.ParseFloat(part, 64)
			f = f*60 + d
		}
		if neg {
			f = -f
		}
		return &Value{Kind: KindFloat, Float: f, Str: s}
	case reFloat.MatchString(s):
		if s == "." || s == "-." || s == "+." {
			return str
		}
		t := strings.NewReplacer("_", "", ",", "").Replace(s)
		if strings.HasSuffix(t, ".") {
			t += "0"
		}
		if strings.HasPrefix(t, ".") || strings.HasPrefix(t, "-.") || strings.HasPrefix(t, "+.") {
			t = strings.Replace(t, ".", "0.", 1)
		}
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return &Value{Kind: KindFloat, Float: f, Str: s}
		}
		return str
	}
	if v := parseRubyInt(s); v != nil {
		return v
	}
	return str
}

func parseRubyInt(s string) *Value {
	clean := strings.NewReplacer("_", "", ",", "").Replace(s)
	neg := strings.HasPrefix(clean, "-")
	body := strings.TrimLeft(clean, "+-")
	base := 10
	switch {
	case reIntBin.MatchString(s):
		base, body = 2, body[2:]
	case reIntHex.MatchString(s):
		base, body = 16, body[2:]
	case reIntOct.MatchString(s):
		base, body = 8, body[1:]
	case reIntDec.MatchString(s):
	default:
		return nil
	}
	n, err := strconv.ParseInt(body, base, 64)
	if err != nil {
		return nil
	}
	if neg {
		n = -n
	}
	return &Value{Kind: KindInt, Int: n, Str: s}
}

// sortedKeys returns the keys of a Go map, sorted.
func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
