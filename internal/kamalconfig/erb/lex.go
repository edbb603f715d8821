package erb

import (
	"errors"
	"fmt"
	"strings"
)

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
		case strings.ContainsRune("[](),.!={}?:", rune(c)):
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
