package erb

import "strings"

// condFrame is one open if/unless: whether the enclosing code runs,
// whether a branch was taken, and whether the current branch runs.
type condFrame struct{ parent, taken, active bool }

// goRenderer renders a template with the built-in subset.
type goRenderer struct {
	ev          *rubyEval
	out         strings.Builder
	lineMap     []int
	atLineStart bool
	stack       []condFrame
}

func renderGo(src string, e *Options) (string, []int, error) {
	tags := scanERB(src)
	g := &goRenderer{ev: &rubyEval{env: e, locals: map[string]rval{}}, atLineStart: true}
	for _, t := range tags {
		if err := g.tag(t); err != nil {
			return "", nil, err
		}
	}
	if len(g.stack) != 0 {
		return "", nil, &unsupportedError{tags[len(tags)-1].line, "unterminated if"}
	}
	return g.out.String(), g.lineMap, nil
}

// emit writes s, produced by template line srcLine; perChar says s is
// template text whose own newlines advance the template line.
func (g *goRenderer) emit(s string, srcLine int, perChar bool) {
	for _, r := range s {
		if g.atLineStart {
			g.lineMap = append(g.lineMap, srcLine)
			g.atLineStart = false
		}
		g.out.WriteRune(r)
		if r == '\n' {
			g.atLineStart = true
			if perChar {
				srcLine++
			}
		}
	}
}

func (g *goRenderer) active() bool { return len(g.stack) == 0 || g.stack[len(g.stack)-1].active }

// tag renders one scanned piece: text, a comment, <%= expr %> or <% code %>.
func (g *goRenderer) tag(t erbTag) error {
	g.ev.line = t.line
	switch t.kind {
	case 't':
		if g.active() {
			g.emit(t.text, t.line, true)
		}
	case '=':
		if !g.active() {
			return nil
		}
		v, err := g.ev.evalString(t.text)
		if err != nil {
			return err
		}
		g.emit(v.toS(), t.line, false)
	case ' ':
		for _, stmt := range splitStatements(t.text) {
			if stmt = strings.TrimSpace(stmt); stmt != "" {
				if err := g.statement(t.line, stmt); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// statement runs one statement of a code tag: a conditional keyword or,
// in an active branch, code for the evaluator.
func (g *goRenderer) statement(line int, stmt string) error {
	word, rest, _ := strings.Cut(stmt, " ")
	switch word {
	case "if", "unless":
		fr := condFrame{parent: g.active()}
		if fr.parent {
			v, err := g.ev.evalString(rest)
			if err != nil {
				return err
			}
			fr.active = v.truthy() != (word == "unless")
			fr.taken = fr.active
		}
		g.stack = append(g.stack, fr)
	case "elsif":
		if len(g.stack) == 0 {
			return &unsupportedError{line, stmt}
		}
		fr := &g.stack[len(g.stack)-1]
		fr.active = false
		if fr.parent && !fr.taken {
			v, err := g.ev.evalString(rest)
			if err != nil {
				return err
			}
			fr.active = v.truthy()
			fr.taken = fr.active
		}
	case "else", "end":
		if len(g.stack) == 0 || rest != "" {
			return &unsupportedError{line, stmt}
		}
		if word == "end" {
			g.stack = g.stack[:len(g.stack)-1]
			return nil
		}
		fr := &g.stack[len(g.stack)-1]
		fr.active = fr.parent && !fr.taken
		fr.taken = true
	default:
		if g.active() {
			return g.ev.exec(stmt)
		}
	}
	return nil
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
