package erb

import "strings"

type condFrame struct{ parent, taken, active bool }

func renderGo(src string, e *Options) (string, []int, error) {
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
