// Package shellwords splits and quotes command lines the way a POSIX shell
// reads them: the `cmd:` of a Kamal role, the `$(…)` of a secrets file and
// the values kctl prints for a shell to read back.
package shellwords

import (
	"errors"
	"strings"
)

// Sentinel errors of Split.
var (
	// ErrUnterminatedSingle is a ' without its closing quote.
	ErrUnterminatedSingle = errors.New("shellwords: unterminated single quote")
	// ErrUnterminatedDouble is a " without its closing quote.
	ErrUnterminatedDouble = errors.New("shellwords: unterminated double quote")
)

// Split splits s into words as sh does before expansion: blanks separate
// words, '…' keeps everything literally, "…" keeps everything but \$, \`,
// \", \\ and \<newline> (a line continuation), and an unquoted backslash
// quotes the next character (\<newline> joins lines; a trailing backslash
// is kept). Nothing is expanded.
func Split(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			continue
		case '\\':
			i = unquotedEscape(s, i, &cur)
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, ErrUnterminatedSingle
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			end, err := doubleQuoted(s, i, &cur)
			if err != nil {
				return nil, err
			}
			i = end
		default:
			cur.WriteByte(c)
		}
		inWord = true
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// unquotedEscape handles the backslash at s[i] outside quotes and returns
// the index of the last byte it consumed.
func unquotedEscape(s string, i int, cur *strings.Builder) int {
	if i+1 >= len(s) {
		cur.WriteByte('\\')
		return i
	}
	if s[i+1] != '\n' {
		cur.WriteByte(s[i+1])
	}
	return i + 1
}

// doubleQuoted copies the "…" string opening at s[open] into cur and
// returns the index of its closing quote.
func doubleQuoted(s string, open int, cur *strings.Builder) (int, error) {
	for i := open + 1; i < len(s); i++ {
		switch {
		case s[i] == '"':
			return i, nil
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
		case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0:
			i++
			cur.WriteByte(s[i])
		default:
			cur.WriteByte(s[i])
		}
	}
	return 0, ErrUnterminatedDouble
}

// Escape quotes s for a POSIX shell as Ruby's Shellwords.escape does: every
// ASCII character but letters, digits and _-.,:+/@ gets a backslash, a
// newline becomes '\n' in single quotes, and the empty string becomes a
// pair of single quotes.
func Escape(s string) string {
	if s == "" {
		return "''"
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString("'\n'")
		case r < 0x80 && !isSafe(r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isSafe(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.,:+/@", r)
}
