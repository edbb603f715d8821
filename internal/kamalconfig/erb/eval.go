package erb

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// rval is a Ruby value in the subset: nil, String, Integer, true/false.
type rval struct {
	kind byte // 'n', 's', 'i', 'b'
	s    string
	i    int64
	b    bool
}

var rnil = rval{kind: 'n'}

func (v rval) toS() string {
	switch v.kind {
	case 's':
		return v.s
	case 'i':
		return strconv.FormatInt(v.i, 10)
	case 'b':
		return strconv.FormatBool(v.b)
	}
	return ""
}

func (v rval) truthy() bool { return v.kind != 'n' && !(v.kind == 'b' && !v.b) }

type rubyEval struct {
	env    *Options
	locals map[string]rval
	line   int
	toks   []string
	pos    int
	src    string
	// dead counts the enclosing operands Ruby would not evaluate (the right
	// side of a decided || or &&, the branch a ternary does not take):
	// they are parsed, so they must be in the subset, but they raise
	// nothing and read no file.
	dead int
}

// RubyEngine and RubyEngineVersion are what the subset answers for
// RUBY_ENGINE and RUBY_ENGINE_VERSION (and RUBY_VERSION), which Rails'
// generated deploy.yml interpolates in a comment
// ("#{RUBY_ENGINE}-#{RUBY_ENGINE_VERSION}"). kctl runs no Ruby, so the
// version is nominal: 3.4.1, the Ruby Kamal 2.12 is commonly run with (Rails
// 8's generated .ruby-version at Kamal 2.12's release, also the corpus's
// synthetic .ruby-version). A file that needs the real interpreter's
// version must be rendered by ruby (erb.RubyOnly).
const (
	RubyEngine        = "ruby"
	RubyEngineVersion = "3.4.1"
)

// raise is a Ruby exception, or nil in an operand Ruby would not evaluate.
func (ev *rubyEval) raise(class, msg string) (rval, error) {
	if ev.dead > 0 {
		return rnil, nil
	}
	return rnil, &rubyError{class: class, msg: msg, line: ev.line}
}

// branch parses an operand, evaluating it only when run is set.
func (ev *rubyEval) branch(run bool, parse func() (rval, error)) (rval, error) {
	if !run {
		ev.dead++
		defer func() { ev.dead-- }()
	}
	return parse()
}

func (ev *rubyEval) unsupported() error {
	return &unsupportedError{ev.line, strings.TrimSpace(ev.src)}
}

func (ev *rubyEval) exec(stmt string) error {
	ev.src = stmt
	toks, err := lexRuby(stmt)
	if err != nil {
		return ev.unsupported()
	}
	ev.toks, ev.pos = toks, 0
	if len(toks) == 2 && toks[0] == "require" && isStrTok(toks[1]) {
		return nil // the libraries Kamal loads (dotenv, json) are no-ops here
	}
	if len(toks) >= 3 && isLocalName(toks[0]) && toks[1] == "=" {
		ev.pos = 2
		v, err := ev.parseExpr()
		if err != nil {
			return err
		}
		if ev.pos != len(ev.toks) {
			return ev.unsupported()
		}
		ev.locals[toks[0]] = v
		return nil
	}
	if len(toks) >= 3 && toks[0] == "Dotenv" && toks[1] == "." && (toks[2] == "load" || toks[2] == "overload") {
		ev.pos = 3
		var files []string
		if ev.peek() == "(" {
			ev.pos++
			for ev.peek() != ")" {
				v, err := ev.parseExpr()
				if err != nil {
					return err
				}
				files = append(files, v.toS())
				if ev.peek() == "," {
					ev.pos++
				} else if ev.peek() != ")" {
					return ev.unsupported()
				}
			}
			ev.pos++
		}
		if ev.pos != len(ev.toks) {
			return ev.unsupported()
		}
		if len(files) == 0 {
			files = []string{".env"}
		}
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(ev.env.Dir, f))
			if err != nil {
				continue
			}
			for _, kv := range parseSimpleDotenv(string(data)) {
				if _, ok := ev.env.Env[kv[0]]; !ok || toks[2] == "overload" {
					ev.env.Env[kv[0]] = kv[1]
				}
			}
		}
		return nil
	}
	return ev.unsupported()
}

// parseSimpleDotenv reads KEY=VALUE lines (used for Dotenv.load in templates).
func parseSimpleDotenv(s string) [][2]string {
	var out [][2]string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		out = append(out, [2]string{strings.TrimSpace(k), v})
	}
	return out
}

func isLocalName(t string) bool {
	if t == "" || !(unicode.IsLower(rune(t[0])) || t[0] == '_') {
		return false
	}
	for _, r := range t {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_') {
			return false
		}
	}
	switch t {
	case "nil", "true", "false", "if", "unless", "end", "else", "elsif", "require", "and", "or", "not":
		return false
	}
	return true
}

func isStrTok(t string) bool { return len(t) >= 1 && (t[0] == '"' || t[0] == '\'') }

// closingQuote finds the " closing the string opened at s[open], skipping
// escapes and #{...} blocks (which may contain quotes).
func closingQuote(s string, open int) (int, bool) {
	depth := 0
	for j := open + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\':
			j++
		case depth == 0 && s[j] == '"':
			return j, true
		case s[j] == '#' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case depth > 0 && s[j] == '}':
			depth--
		case depth > 0 && (s[j] == '"' || s[j] == '\''):
			q := s[j]
			for j++; j < len(s) && s[j] != q; j++ {
				if s[j] == '\\' {
					j++
				}
			}
		}
	}
	return 0, false
}

// interpolate evaluates the raw body of a "…#{expr}…" string.
func (ev *rubyEval) interpolate(raw string) (rval, error) {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw):
			i++
			switch raw[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case '"', '\\', '#':
				b.WriteByte(raw[i])
			default:
				return rnil, ev.unsupported()
			}
		case c == '#' && i+1 < len(raw) && raw[i+1] == '{':
			depth, j := 0, i+1
			for ; j < len(raw); j++ {
				if raw[j] == '{' {
					depth++
				} else if raw[j] == '}' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j >= len(raw) {
				return rnil, ev.unsupported()
			}
			sub := &rubyEval{env: ev.env, locals: ev.locals, line: ev.line, dead: ev.dead}
			v, err := sub.evalString(raw[i+2 : j])
			if err != nil {
				return rnil, err
			}
			b.WriteString(v.toS())
			i = j
		default:
			b.WriteByte(c)
		}
	}
	return rval{kind: 's', s: b.String()}, nil
}

func (ev *rubyEval) evalString(expr string) (rval, error) {
	ev.src = expr
	toks, err := lexRuby(expr)
	if err != nil {
		return rnil, ev.unsupported()
	}
	if len(toks) == 0 {
		return rnil, nil
	}
	ev.toks, ev.pos = toks, 0
	v, err := ev.parseExpr()
	if err != nil {
		return rnil, err
	}
	if ev.pos != len(ev.toks) {
		return rnil, ev.unsupported()
	}
	return v, nil
}

func (ev *rubyEval) peek() string {
	if ev.pos < len(ev.toks) {
		return ev.toks[ev.pos]
	}
	return ""
}

func (ev *rubyEval) expect(t string) error {
	if ev.peek() != t {
		return ev.unsupported()
	}
	ev.pos++
	return nil
}

// parseExpr is an expression: cond ? a : b (right-associative, binding
// looser than ||), evaluating only the branch taken.
func (ev *rubyEval) parseExpr() (rval, error) {
	c, err := ev.parseOr()
	if err != nil || ev.peek() != "?" {
		return c, err
	}
	ev.pos++
	yes, err := ev.branch(c.truthy(), ev.parseExpr)
	if err != nil {
		return rnil, err
	}
	if err := ev.expect(":"); err != nil {
		return rnil, err
	}
	no, err := ev.branch(!c.truthy(), ev.parseExpr)
	if err != nil {
		return rnil, err
	}
	if c.truthy() {
		return yes, nil
	}
	return no, nil
}

func (ev *rubyEval) parseOr() (rval, error) {
	v, err := ev.parseAnd()
	if err != nil {
		return rnil, err
	}
	for ev.peek() == "||" {
		ev.pos++
		r, err := ev.branch(!v.truthy(), ev.parseAnd)
		if err != nil {
			return rnil, err
		}
		if !v.truthy() {
			v = r
		}
	}
	return v, nil
}

func (ev *rubyEval) parseAnd() (rval, error) {
	v, err := ev.parseEq()
	if err != nil {
		return rnil, err
	}
	for ev.peek() == "&&" {
		ev.pos++
		r, err := ev.branch(v.truthy(), ev.parseEq)
		if err != nil {
			return rnil, err
		}
		if v.truthy() {
			v = r
		}
	}
	return v, nil
}

func (ev *rubyEval) parseEq() (rval, error) {
	v, err := ev.parseUnary()
	if err != nil {
		return rnil, err
	}
	if op := ev.peek(); op == "==" || op == "!=" {
		ev.pos++
		r, err := ev.parseUnary()
		if err != nil {
			return rnil, err
		}
		eq := v.kind == r.kind && v.s == r.s && v.i == r.i && v.b == r.b
		return rval{kind: 'b', b: eq == (op == "==")}, nil
	}
	return v, nil
}

func (ev *rubyEval) parseUnary() (rval, error) {
	if ev.peek() == "!" {
		ev.pos++
		v, err := ev.parseUnary()
		if err != nil {
			return rnil, err
		}
		return rval{kind: 'b', b: !v.truthy()}, nil
	}
	return ev.parsePostfix()
}

func (ev *rubyEval) parsePostfix() (rval, error) {
	v, err := ev.parseAtom()
	if err != nil {
		return rnil, err
	}
	for ev.peek() == "." {
		ev.pos++
		m := ev.peek()
		ev.pos++
		if ev.peek() == "(" {
			if ev.pos+1 < len(ev.toks) && ev.toks[ev.pos+1] == ")" {
				ev.pos += 2
			} else {
				return rnil, ev.unsupported()
			}
		}
		switch m {
		case "to_s":
			v = rval{kind: 's', s: v.toS()}
		case "strip", "lstrip", "rstrip", "chomp", "upcase", "downcase":
			if v.kind != 's' {
				if v, err = ev.raise("NoMethodError", fmt.Sprintf("undefined method `%s' for %s", m, rubyClassDesc(v))); err != nil {
					return rnil, err
				}
				continue
			}
			switch m {
			case "strip":
				v.s = strings.TrimFunc(v.s, isRubySpace)
			case "lstrip":
				v.s = strings.TrimLeftFunc(v.s, isRubySpace)
			case "rstrip":
				v.s = strings.TrimRightFunc(v.s, isRubySpace)
			case "chomp":
				v.s = strings.TrimSuffix(strings.TrimSuffix(v.s, "\n"), "\r")
			case "upcase":
				v.s = strings.ToUpper(v.s)
			case "downcase":
				v.s = strings.ToLower(v.s)
			}
		case "to_i":
			if v.kind == 's' {
				n := 0
				s := strings.TrimLeftFunc(v.s, isRubySpace)
				for n < len(s) && s[n] >= '0' && s[n] <= '9' {
					n++
				}
				i, _ := strconv.ParseInt(s[:n], 10, 64)
				v = rval{kind: 'i', i: i}
			} else if v.kind == 'n' {
				v = rval{kind: 'i'}
			}
		case "empty?":
			if v.kind != 's' && ev.dead > 0 {
				v = rnil
				continue
			}
			if v.kind != 's' {
				return rnil, ev.unsupported()
			}
			v = rval{kind: 'b', b: v.s == ""}
		case "nil?":
			v = rval{kind: 'b', b: v.kind == 'n'}
		case "present?", "blank?":
			blank := !v.truthy() || (v.kind == 's' && strings.TrimSpace(v.s) == "")
			v = rval{kind: 'b', b: blank == (m == "blank?")}
		default:
			return rnil, ev.unsupported()
		}
	}
	return v, nil
}

func isRubySpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v' || r == 0
}

func rubyClassDesc(v rval) string {
	switch v.kind {
	case 'n':
		return "nil:NilClass"
	case 'i':
		return strconv.FormatInt(v.i, 10) + ":Integer"
	case 'b':
		if v.b {
			return "true:TrueClass"
		}
		return "false:FalseClass"
	}
	return "String"
}

func (ev *rubyEval) parseArgs() ([]rval, error) {
	if err := ev.expect("("); err != nil {
		return nil, err
	}
	var args []rval
	for ev.peek() != ")" {
		v, err := ev.parseExpr()
		if err != nil {
			return nil, err
		}
		args = append(args, v)
		if ev.peek() == "," {
			ev.pos++
		} else if ev.peek() != ")" {
			return nil, ev.unsupported()
		}
	}
	ev.pos++
	return args, nil
}

func (ev *rubyEval) parseAtom() (rval, error) {
	t := ev.peek()
	ev.pos++
	switch {
	case t == "(":
		v, err := ev.parseExpr()
		if err != nil {
			return rnil, err
		}
		return v, ev.expect(")")
	case t == "nil":
		return rnil, nil
	case t == "true" || t == "false":
		return rval{kind: 'b', b: t == "true"}, nil
	case strings.HasPrefix(t, "\x01"):
		return ev.interpolate(t[1:])
	case isStrTok(t):
		return rval{kind: 's', s: t[1:]}, nil
	case t != "" && t[0] >= '0' && t[0] <= '9':
		i, err := strconv.ParseInt(strings.ReplaceAll(t, "_", ""), 10, 64)
		if err != nil {
			return rnil, ev.unsupported()
		}
		return rval{kind: 'i', i: i}, nil
	case t == "RUBY_ENGINE":
		return rval{kind: 's', s: RubyEngine}, nil
	case t == "RUBY_ENGINE_VERSION" || t == "RUBY_VERSION":
		return rval{kind: 's', s: RubyEngineVersion}, nil
	case t == "ENV":
		return ev.parseENV()
	case t == "File":
		return ev.parseFile()
	case isLocalName(t):
		if v, ok := ev.locals[t]; ok {
			return v, nil
		}
	}
	return rnil, ev.unsupported()
}

// parseENV evaluates what follows ENV: [key], .fetch(key[, default]) or
// .key?(key) (also has_key?, include?).
func (ev *rubyEval) parseENV() (rval, error) {
	switch ev.peek() {
	case "[":
		ev.pos++
		k, err := ev.parseExpr()
		if err != nil {
			return rnil, err
		}
		if err := ev.expect("]"); err != nil {
			return rnil, err
		}
		if k.kind != 's' {
			return rnil, ev.unsupported()
		}
		if v, ok := ev.env.Env[k.s]; ok {
			return rval{kind: 's', s: v}, nil
		}
		return rnil, nil
	case ".":
		ev.pos++
		m := ev.peek()
		ev.pos++
		switch m {
		case "fetch":
			args, err := ev.parseArgs()
			if err != nil {
				return rnil, err
			}
			if ev.peek() == "{" || ev.peek() == "do" || len(args) < 1 || len(args) > 2 || args[0].kind != 's' {
				return rnil, ev.unsupported()
			}
			if v, ok := ev.env.Env[args[0].s]; ok {
				return rval{kind: 's', s: v}, nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return ev.raise("KeyError", fmt.Sprintf("key not found: %q", args[0].s))
		case "key?", "has_key?", "include?":
			args, err := ev.parseArgs()
			if err != nil || len(args) != 1 {
				return rnil, ev.unsupported()
			}
			_, ok := ev.env.Env[args[0].toS()]
			return rval{kind: 'b', b: ok}, nil
		}
	}
	return rnil, ev.unsupported()
}

// parseFile evaluates what follows File: .read(path), .exist?(path) or
// .file?(path), paths relative to the template's directory.
func (ev *rubyEval) parseFile() (rval, error) {
	if ev.peek() != "." {
		return rnil, ev.unsupported()
	}
	ev.pos++
	m := ev.peek()
	ev.pos++
	args, err := ev.parseArgs()
	if err != nil || len(args) != 1 || args[0].kind != 's' {
		return rnil, ev.unsupported()
	}
	p := args[0].s
	if !filepath.IsAbs(p) {
		p = filepath.Join(ev.env.Dir, p)
	}
	switch m {
	case "read":
		if ev.dead > 0 {
			return rnil, nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return ev.raise("Errno::ENOENT", "No such file or directory @ rb_sysopen - "+args[0].s)
		}
		return rval{kind: 's', s: string(data)}, nil
	case "exist?", "file?":
		_, err := os.Stat(p)
		return rval{kind: 'b', b: err == nil}, nil
	}
	return rnil, ev.unsupported()
}
