// Package secrets resolves Kamal secrets: .kamal/secrets-common plus
// .kamal/secrets or .kamal/secrets.<dest>, parsed as dotenv with variable and
// command substitution, where `kamal secrets …` / `kctl secrets …` commands
// run in-process through the vendor adapters (1Password, Bitwarden, …).
//
// Secret values never appear in errors or logs produced by this package.
package secrets

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Sentinel errors.
var (
	// ErrNotFound is a secret missing from every secrets file.
	ErrNotFound = errors.New("secrets: secret not found")
	// ErrCommand is a failed command substitution or adapter call.
	ErrCommand = errors.New("secrets: command failed")
	// ErrSyntax is a line the dotenv parser cannot read.
	ErrSyntax = errors.New("secrets: syntax error")
)

// dotenv's LINE pattern (dotenv 2/3, as Kamal uses it).
var lineRe = regexp.MustCompile(`(?m)(?:^|\A)[ \t]*(?:export[ \t]+)?([\w.]+)(?:(?:[ \t]*=[ \t]*|:[ \t]+)((?:[ \t]*'(?:\\'|[^'])*')|(?:[ \t]*"(?:\\"|[^"])*")|[^#\n]+)?)?[ \t]*(?:#.*)?(?:$|\z)`)

var variableRe = regexp.MustCompile(`(?i)(\\)?(\$)(\{?)([A-Z0-9_]+)?(\}?)`)

// Substituter runs `$(…)` commands found in unquoted or double-quoted values.
type Substituter func(command string) (string, error)

// Parse reads dotenv text. env supplies values for $VAR references not
// defined earlier in the text (Kamal: the process environment); sub runs
// command substitutions. Later definitions override earlier ones.
func Parse(text string, env map[string]string, sub Substituter) (map[string]string, []string, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	out := map[string]string{}
	var order []string
	matches := lineRe.FindAllStringSubmatchIndex(text, -1)
	last := 0
	for _, m := range matches {
		// Anything between matches that is not blank is a syntax error in
		// dotenv only when it looks like an assignment; dotenv ignores it.
		_ = last
		last = m[1]
		key := text[m[2]:m[3]]
		if m[4] < 0 {
			// `KEY` alone or `export KEY`: dotenv keeps existing values.
			continue
		}
		raw := strings.TrimSpace(text[m[4]:m[5]])
		val, err := parseValue(raw, out, env, sub)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", key, err)
		}
		if _, ok := out[key]; !ok {
			order = append(order, key)
		}
		out[key] = val
	}
	return out, order, nil
}

var quotedRe = regexp.MustCompile(`(?s)\A(['"])(.*)(['"])\z`)

func parseValue(v string, hash, env map[string]string, sub Substituter) (string, error) {
	quote := byte(0)
	if m := quotedRe.FindStringSubmatch(v); m != nil && m[1] == m[3] {
		quote = m[1][0]
		v = m[2]
	}
	if quote == '"' {
		v = strings.ReplaceAll(v, `\n`, "\n")
		v = strings.ReplaceAll(v, `\r`, "\r")
	}
	if quote == '\'' {
		return v, nil
	}
	v = unescapeExceptDollar(v)
	v = substituteVariables(v, hash, env)
	return substituteCommands(v, sub)
}

// unescapeExceptDollar is gsub(/\\([^$])/, '\1').
func unescapeExceptDollar(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] != '$' {
			b.WriteByte(s[i+1])
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func substituteVariables(v string, hash, env map[string]string) string {
	var b strings.Builder
	last := 0
	for _, m := range variableRe.FindAllStringSubmatchIndex(v, -1) {
		start, end := m[0], m[1]
		// (?!\() — a $ followed by ( is a command, not a variable.
		if m[4] >= 0 && m[5] < len(v) && v[m[5]] == '(' {
			continue
		}
		b.WriteString(v[last:start])
		last = end
		if m[2] >= 0 {
			b.WriteString(v[start+1 : end]) // escaped: keep "$…"
			continue
		}
		if m[8] < 0 {
			b.WriteString(v[start:end])
			continue
		}
		name := v[m[8]:m[9]]
		if val, ok := hash[name]; ok {
			b.WriteString(val)
		} else if val, ok := env[name]; ok {
			b.WriteString(val)
		}
	}
	b.WriteString(v[last:])
	return b.String()
}

// substituteCommands replaces $(…) (balanced parentheses); \$(…) is kept.
func substituteCommands(v string, sub Substituter) (string, error) {
	var b strings.Builder
	i := 0
	for i < len(v) {
		j := strings.Index(v[i:], "$(")
		if j < 0 {
			b.WriteString(v[i:])
			break
		}
		j += i
		depth, k := 0, j+1
		for ; k < len(v); k++ {
			if v[k] == '(' {
				depth++
			} else if v[k] == ')' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if k >= len(v) {
			b.WriteString(v[i:])
			break
		}
		escaped := j > 0 && v[j-1] == '\\'
		if escaped {
			b.WriteString(v[i : j-1])
			b.WriteString(v[j : k+1])
			i = k + 1
			continue
		}
		b.WriteString(v[i:j])
		cmd := v[j+2 : k]
		if sub == nil {
			return "", fmt.Errorf("%w: command substitution is disabled: $(%s)", ErrCommand, redactCommand(cmd))
		}
		out, err := sub(cmd)
		if err != nil {
			return "", err
		}
		b.WriteString(strings.TrimSuffix(strings.TrimSuffix(out, "\n"), "\r"))
		i = k + 1
	}
	return b.String(), nil
}

// redactCommand names only the program of a command for messages:
// substituted arguments could be secrets.
func redactCommand(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return ""
	}
	if len(f) > 1 {
		return f[0] + " …"
	}
	return f[0]
}
