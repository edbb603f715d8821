package kamalconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ERBMode selects how templates are rendered.
type ERBMode int

const (
	// ERBAuto renders with the built-in subset and falls back to ruby.
	ERBAuto ERBMode = iota
	// ERBGoOnly never runs ruby: constructs beyond the subset are errors.
	ERBGoOnly
	// ERBRubyOnly always renders with ruby.
	ERBRubyOnly
)

// erbEnv is what a template can see.
type erbEnv struct {
	file      string // as shown in messages
	dir       string // working directory for File.read and ruby
	env       map[string]string
	mode      ERBMode
	shellStub *string // when set, backticks return this (ruby fallback only)
	rubyPath  string
}

// unsupportedError marks a construct beyond the Go subset.
type unsupportedError struct {
	line      int
	construct string
}

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("line %d: unsupported ERB construct %q", e.line, e.construct)
}

// rubyError is a Ruby exception raised while evaluating a template.
type rubyError struct {
	class, msg string
	line       int
}

func (e *rubyError) Error() string { return e.class + ": " + e.msg }

// renderERB renders src as Ruby's ERB with trim_mode "-". It returns the
// rendered text and, for the Go renderer, a map from rendered line to
// template line.
func renderERB(src []byte, e *erbEnv) ([]byte, []int, error) {
	if !bytes.Contains(src, []byte("<%")) {
		return src, nil, nil
	}
	if e.mode != ERBRubyOnly {
		out, lm, err := renderGo(string(src), e)
		if err == nil {
			return []byte(out), lm, nil
		}
		var ue *unsupportedError
		if !errors.As(err, &ue) {
			return nil, nil, templateError(e.file, err)
		}
		if e.mode == ERBGoOnly || e.rubyPath == "" {
			return nil, nil, &Error{Kind: "kctl::TemplateError", Err: ErrTemplate,
				Pos:  Pos{File: e.file, Line: ue.line, Column: 1},
				Msg:  fmt.Sprintf("ERB construct %q is beyond kctl's built-in ERB subset (ENV[...], ENV.fetch, File.read(...).strip, if/else, comments) and ruby is not available to render it", ue.construct),
				Hint: "install ruby (e.g. apt-get install ruby) so kctl can render the file with ruby -rerb as Kamal does, or replace the construct"}
		}
	}
	if e.rubyPath == "" {
		return nil, nil, &Error{Kind: "kctl::TemplateError", Err: ErrTemplate, Pos: Pos{File: e.file}, Msg: "ruby is required to render this template but was not found on PATH"}
	}
	out, err := renderRuby(src, e)
	if err != nil {
		return nil, nil, templateError(e.file, err)
	}
	return out, estimateLineMap(string(src), string(out)), nil
}

// estimateLineMap maps lines of a ruby-rendered template back to template
// lines by replaying its text with every tag producing nothing. It is used
// only when the replay has exactly as many lines as ruby's output (no
// conditional or multi-line output changed the shape); otherwise positions
// refer to the rendered text and nil is returned.
func estimateLineMap(src, out string) []int {
	var lm []int
	atStart := true
	for _, t := range scanERB(src) {
		if t.kind != 't' {
			continue
		}
		line := t.line
		for _, r := range t.text {
			if atStart {
				lm = append(lm, line)
				atStart = false
			}
			if r == '\n' {
				atStart = true
				line++
			}
		}
	}
	want := strings.Count(out, "\n")
	if !strings.HasSuffix(out, "\n") && out != "" {
		want++
	}
	if len(lm) != want {
		return nil
	}
	return lm
}

func templateError(file string, err error) error {
	var re *rubyError
	if errors.As(err, &re) {
		return &Error{Kind: re.class, Msg: re.msg, Pos: Pos{File: file, Line: re.line}, Err: ErrTemplate}
	}
	var ke *Error
	if errors.As(err, &ke) {
		return ke
	}
	return &Error{Kind: "kctl::TemplateError", Msg: err.Error(), Pos: Pos{File: file}, Err: ErrTemplate}
}

// ---- Go subset ----

type erbTag struct {
	kind byte // '=', '#', ' ' (code), 't' (text)
	text string
	line int // template line where the tag (or text) starts
}

func scanERB(src string) []erbTag {
	var tags []erbTag
	line := 1
	var text strings.Builder
	textLine := 1
	flush := func() {
		if text.Len() > 0 {
			tags = append(tags, erbTag{kind: 't', text: text.String(), line: textLine})
			text.Reset()
		}
	}
	i := 0
	for i < len(src) {
		if strings.HasPrefix(src[i:], "<%%") {
			if text.Len() == 0 {
				textLine = line
			}
			text.WriteString("<%")
			i += 3
			continue
		}
		if strings.HasPrefix(src[i:], "<%") {
			j := i + 2
			kind := byte(' ')
			if j < len(src) && src[j] == '-' {
				// <%- strips the indentation before the tag on its line.
				t := text.String()
				k := strings.LastIndexByte(t, '\n')
				if strings.TrimLeft(t[k+1:], " \t") == "" {
					text.Reset()
					text.WriteString(t[:k+1])
				}
				j++
			}
			if j < len(src) && (src[j] == '=' || src[j] == '#') {
				kind = src[j]
				j++
			}
			end := strings.Index(src[j:], "%>")
			if end < 0 {
				text.WriteString(src[i:])
				break
			}
			body := src[j : j+end]
			next := j + end + 2
			trim := strings.HasSuffix(body, "-")
			if trim {
				body = body[:len(body)-1]
			}
			flush()
			tags = append(tags, erbTag{kind: kind, text: body, line: line})
			line += strings.Count(src[i:next], "\n")
			i = next
			if trim {
				if strings.HasPrefix(src[i:], "\r\n") {
					i += 2
					line++
				} else if strings.HasPrefix(src[i:], "\n") {
					i++
					line++
				}
			}
			textLine = line
			continue
		}
		if text.Len() == 0 {
			textLine = line
		}
		if src[i] == '\n' {
			line++
		}
		text.WriteByte(src[i])
		i++
	}
	flush()
	return tags
}

type condFrame struct{ parent, taken, active bool }

func renderGo(src string, e *erbEnv) (string, []int, error) {
	tags := scanERB(src)
	var out strings.Builder
	var lineMap []int
	atLineStart := true
	emit := func(s string, srcLine int, perChar bool) {
		for _, r := range s {
			if atLineStart {
				lineMap = append(lineMap, srcLine)
				atLineStart = false
			}
			out.WriteRune(r)
			if r == '\n' {
				atLineStart = true
				if perChar {
					srcLine++
				}
			}
		}
	}
	ev := &rubyEval{env: e, locals: map[string]rval{}}
	var stack []condFrame
	active := func() bool { return len(stack) == 0 || stack[len(stack)-1].active }
	for _, t := range tags {
		ev.line = t.line
		switch t.kind {
		case 't':
			if active() {
				emit(t.text, t.line, true)
			}
		case '#':
		case '=':
			if !active() {
				continue
			}
			v, err := ev.evalString(t.text)
			if err != nil {
				return "", nil, err
			}
			emit(v.toS(), t.line, false)
		case ' ':
			for _, stmt := range splitStatements(t.text) {
				stmt = strings.TrimSpace(stmt)
				if stmt == "" {
					continue
				}
				word, rest, _ := strings.Cut(stmt, " ")
				switch word {
				case "if", "unless":
					fr := condFrame{parent: active()}
					if fr.parent {
						v, err := ev.evalString(rest)
						if err != nil {
							return "", nil, err
						}
						fr.active = v.truthy() != (word == "unless")
						fr.taken = fr.active
					}
					stack = append(stack, fr)
				case "elsif":
					if len(stack) == 0 {
						return "", nil, &unsupportedError{t.line, stmt}
					}
					fr := &stack[len(stack)-1]
					fr.active = false
					if fr.parent && !fr.taken {
						v, err := ev.evalString(rest)
						if err != nil {
							return "", nil, err
						}
						fr.active = v.truthy()
						fr.taken = fr.active
					}
				case "else":
					if len(stack) == 0 || rest != "" {
						return "", nil, &unsupportedError{t.line, stmt}
					}
					fr := &stack[len(stack)-1]
					fr.active = fr.parent && !fr.taken
					fr.taken = true
				case "end":
					if len(stack) == 0 || rest != "" {
						return "", nil, &unsupportedError{t.line, stmt}
					}
					stack = stack[:len(stack)-1]
				default:
					if !active() {
						continue
					}
					if err := ev.exec(stmt); err != nil {
						return "", nil, err
					}
				}
			}
		}
	}
	if len(stack) != 0 {
		return "", nil, &unsupportedError{tags[len(tags)-1].line, "unterminated if"}
	}
	return out.String(), lineMap, nil
}

func splitStatements(code string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	for _, r := range code {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == ';' || r == '\n':
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	return append(out, cur.String())
}

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
	env    *erbEnv
	locals map[string]rval
	line   int
	toks   []string
	pos    int
	src    string
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
		v, err := ev.parseOr()
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
				v, err := ev.parseOr()
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
			data, err := os.ReadFile(filepath.Join(ev.env.dir, f))
			if err != nil {
				continue
			}
			for _, kv := range parseSimpleDotenv(string(data)) {
				if _, ok := ev.env.env[kv[0]]; !ok || toks[2] == "overload" {
					ev.env.env[kv[0]] = kv[1]
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
			sub := &rubyEval{env: ev.env, locals: ev.locals, line: ev.line}
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
	v, err := ev.parseOr()
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

func (ev *rubyEval) parseOr() (rval, error) {
	v, err := ev.parseAnd()
	if err != nil {
		return rnil, err
	}
	for ev.peek() == "||" {
		ev.pos++
		r, err := ev.parseAnd()
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
		r, err := ev.parseEq()
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
				return rnil, &rubyError{class: "NoMethodError", msg: fmt.Sprintf("undefined method `%s' for %s", m, rubyClassDesc(v)), line: ev.line}
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
		v, err := ev.parseOr()
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
		v, err := ev.parseOr()
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
	case t == "ENV":
		switch ev.peek() {
		case "[":
			ev.pos++
			k, err := ev.parseOr()
			if err != nil {
				return rnil, err
			}
			if err := ev.expect("]"); err != nil {
				return rnil, err
			}
			if k.kind != 's' {
				return rnil, ev.unsupported()
			}
			if v, ok := ev.env.env[k.s]; ok {
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
				if v, ok := ev.env.env[args[0].s]; ok {
					return rval{kind: 's', s: v}, nil
				}
				if len(args) == 2 {
					return args[1], nil
				}
				return rnil, &rubyError{class: "KeyError", msg: fmt.Sprintf("key not found: %q", args[0].s), line: ev.line}
			case "key?", "has_key?", "include?":
				args, err := ev.parseArgs()
				if err != nil || len(args) != 1 {
					return rnil, ev.unsupported()
				}
				_, ok := ev.env.env[args[0].toS()]
				return rval{kind: 'b', b: ok}, nil
			}
		}
		return rnil, ev.unsupported()
	case t == "File":
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
			p = filepath.Join(ev.env.dir, p)
		}
		switch m {
		case "read":
			data, err := os.ReadFile(p)
			if err != nil {
				return rnil, &rubyError{class: "Errno::ENOENT", msg: "No such file or directory @ rb_sysopen - " + args[0].s, line: ev.line}
			}
			return rval{kind: 's', s: string(data)}, nil
		case "exist?", "file?":
			_, err := os.Stat(p)
			return rval{kind: 'b', b: err == nil}, nil
		}
		return rnil, ev.unsupported()
	case isLocalName(t):
		if v, ok := ev.locals[t]; ok {
			return v, nil
		}
	}
	return rnil, ev.unsupported()
}

// lexRuby splits the subset into tokens. String tokens keep their opening
// quote followed by the unescaped content. Interpolation is unsupported.
func lexRuby(s string) ([]string, error) {
	var toks []string
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			var b strings.Builder
			b.WriteByte(c)
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == c {
					closed = true
					j++
					break
				}
				if s[j] == '\\' && j+1 < len(s) {
					n := s[j+1]
					if c == '\'' {
						if n == '\'' || n == '\\' {
							b.WriteByte(n)
						} else {
							b.WriteByte('\\')
							b.WriteByte(n)
						}
					} else {
						switch n {
						case 'n':
							b.WriteByte('\n')
						case 't':
							b.WriteByte('\t')
						case '"', '\\', '#':
							b.WriteByte(n)
						default:
							return nil, errors.New("escape")
						}
					}
					j += 2
					continue
				}
				if c == '"' && s[j] == '#' && j+1 < len(s) && (s[j+1] == '$' || s[j+1] == '@') {
					return nil, errors.New("interpolation")
				}
				if c == '"' && s[j] == '#' && j+1 < len(s) && s[j+1] == '{' {
					// Interpolated string: keep the raw source for the evaluator.
					end, ok := closingQuote(s, i)
					if !ok {
						return nil, errors.New("unterminated string")
					}
					toks = append(toks, "\x01"+s[i+1:end])
					i = end + 1
					closed = true
					b.Reset()
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if !closed {
				return nil, errors.New("unterminated string")
			}
			if b.Len() == 0 {
				continue // an interpolated string was emitted
			}
			toks = append(toks, b.String())
			i = j
		case strings.HasPrefix(s[i:], "||"), strings.HasPrefix(s[i:], "&&"), strings.HasPrefix(s[i:], "=="), strings.HasPrefix(s[i:], "!="):
			toks = append(toks, s[i:i+2])
			i += 2
		case strings.ContainsRune("[](),.!={}", rune(c)):
			toks = append(toks, string(c))
			i++
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			if j < len(s) && (s[j] == '?' || s[j] == '!') && !(j+1 < len(s) && s[j+1] == '=') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
	}
	return toks, nil
}

// ---- ruby fallback ----

const rubyDotenvShim = `module Dotenv
  def self.parse_files(files)
    files = [".env"] if files.empty?
    files.flatten.each_with_object({}) do |f, h|
      next unless File.exist?(f)
      File.readlines(f).each do |line|
        next if line =~ /\A\s*(#|\z)/
        k, v = line.chomp.sub(/\A\s*export\s+/, "").split("=", 2)
        next unless v
        v = v.strip
        v = v[1..-2] if v.length >= 2 && ((v.start_with?('"') && v.end_with?('"')) || (v.start_with?("'") && v.end_with?("'")))
        h[k.strip] = v
      end
    end
  end
  def self.load(*files)
    parse_files(files).each { |k, v| ENV[k] ||= v }
  end
  def self.overload(*files)
    parse_files(files).each { |k, v| ENV[k] = v }
  end
  def self.load!(*files)
    load(*files)
  end
end
`

const rubyRenderScript = `
if ($kctl_shell_stub = ENV.delete("KCTL_ERB_SHELL_STUB"))
  module Kernel
    def ` + "`" + `(_cmd)
      $kctl_shell_stub.dup
    end
  end
end
src = STDIN.read.force_encoding("UTF-8")
erb = ERB.new(src, trim_mode: "-")
erb.filename = ARGV[0]
begin
  out = erb.result(TOPLEVEL_BINDING.dup)
  STDOUT.write(out)
rescue Exception => e
  line = (e.backtrace || []).map { |l| l[/\A#{Regexp.escape(ARGV[0])}:(\d+)/, 1] }.compact.first
  if e.is_a?(SyntaxError) && line.nil?
    line = e.message[/#{Regexp.escape(ARGV[0])}:(\d+)/, 1]
  end
  STDERR.write("KCTL-ERB-ERROR\t#{e.class}\t#{line}\t#{e.message.to_s.lines.first.to_s.chomp}\n")
  exit 1
end
`

func renderRuby(src []byte, e *erbEnv) ([]byte, error) {
	shimDir, err := os.MkdirTemp("", "kctl-erb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(shimDir)
	if err := os.WriteFile(filepath.Join(shimDir, "dotenv.rb"), []byte(rubyDotenvShim), 0o600); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.rubyPath, "-E", "UTF-8:UTF-8", "-I", shimDir, "-rerb", "-e", rubyRenderScript, e.file)
	cmd.Dir = e.dir
	cmd.Stdin = bytes.NewReader(src)
	env := make([]string, 0, len(e.env)+4)
	for _, k := range sortedKeys(e.env) {
		env = append(env, k+"="+e.env[k])
	}
	for _, k := range []string{"PATH", "HOME"} {
		if _, ok := e.env[k]; !ok {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	if e.shellStub != nil {
		env = append(env, "KCTL_ERB_SHELL_STUB="+*e.shellStub)
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		for _, l := range strings.Split(stderr.String(), "\n") {
			if rest, ok := strings.CutPrefix(l, "KCTL-ERB-ERROR\t"); ok {
				parts := strings.SplitN(rest, "\t", 3)
				if len(parts) == 3 {
					line, _ := strconv.Atoi(parts[1])
					return nil, &rubyError{class: parts[0], msg: parts[2], line: line}
				}
			}
		}
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return nil, fmt.Errorf("ruby failed to render the template: %v: %s", err, msg)
	}
	return stdout.Bytes(), nil
}
