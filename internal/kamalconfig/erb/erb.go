// Package erb renders Kamal's ERB templates (config/deploy.yml, accessory
// files ending in .erb) as Ruby's ERB with trim_mode "-" does. A built-in
// interpreter covers the subset real projects use (ENV[...], ENV.fetch,
// File.read(...).strip, locals, if/elsif/else, Dotenv.load, "#{...}"
// strings) and keeps a map from rendered to template lines; anything beyond
// it is rendered by the local ruby, when there is one.
package erb

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Mode selects how templates are rendered.
type Mode int

const (
	// Auto renders with the built-in subset and falls back to ruby.
	Auto Mode = iota
	// GoOnly never runs ruby: constructs beyond the subset are errors.
	GoOnly
	// RubyOnly always renders with ruby.
	RubyOnly
)

// Options is what a template can see and how it is rendered.
type Options struct {
	// File names the template in messages (and is ruby's __FILE__).
	File string
	// Dir is the working directory for File.read, Dotenv.load and ruby.
	Dir string
	// Env is what ENV holds. Dotenv.load and Dotenv.overload add to it, so
	// a later template rendered with the same map sees the loaded values.
	Env map[string]string
	// Mode selects the renderer; Auto by default.
	Mode Mode
	// Ruby is the ruby executable for the fallback; "" means none.
	Ruby string
	// ShellStub, when set, makes backticks and %x() in templates rendered by
	// ruby return this string instead of running a command (tests
	// reproducing Kamal's corpus). It is never read from the environment.
	ShellStub *string
}

// ErrTemplate is a template that could not be rendered; every *Error wraps it.
var ErrTemplate = errors.New("erb: template error")

// Error is a template that could not be rendered: a Ruby exception raised
// by the template, or a construct no available renderer handles.
type Error struct {
	// Kind is the Ruby exception class, or "kctl::TemplateError".
	Kind string
	Msg  string
	// File, Line and Column locate the problem; Line is 0 when unknown.
	File         string
	Line, Column int
	// Hint is optional advice.
	Hint string
}

func (e *Error) Error() string {
	s := e.Msg
	if e.File != "" && e.Line > 0 {
		s = fmt.Sprintf("%s:%d: %s", e.File, e.Line, s)
	} else if e.File != "" {
		s = e.File + ": " + s
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Unwrap returns ErrTemplate.
func (e *Error) Unwrap() error { return ErrTemplate }

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

// Render renders src as Ruby's ERB with trim_mode "-". It returns the
// rendered text and, when known, a map from rendered line (index) to
// template line. Errors are *Error.
func Render(src []byte, e *Options) ([]byte, []int, error) {
	if !bytes.Contains(src, []byte("<%")) {
		return src, nil, nil
	}
	if e.Mode != RubyOnly {
		out, lm, err := renderGo(string(src), e)
		if err == nil {
			return []byte(out), lm, nil
		}
		var ue *unsupportedError
		if !errors.As(err, &ue) {
			return nil, nil, templateError(e.File, err)
		}
		if e.Mode == GoOnly || e.Ruby == "" {
			return nil, nil, &Error{Kind: "kctl::TemplateError", File: e.File, Line: ue.line, Column: 1,
				Msg:  fmt.Sprintf("ERB construct %q is beyond kctl's built-in ERB subset (ENV[...], ENV.fetch, File.read(...).strip, if/else, comments) and ruby is not available to render it", ue.construct),
				Hint: "install ruby (e.g. apt-get install ruby) so kctl can render the file with ruby -rerb as Kamal does, or replace the construct"}
		}
	}
	if e.Ruby == "" {
		return nil, nil, &Error{Kind: "kctl::TemplateError", File: e.File, Msg: "ruby is required to render this template but was not found on PATH"}
	}
	out, err := renderRuby(src, e)
	if err != nil {
		return nil, nil, templateError(e.File, err)
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
		return &Error{Kind: re.class, Msg: re.msg, File: file, Line: re.line}
	}
	var ke *Error
	if errors.As(err, &ke) {
		return ke
	}
	return &Error{Kind: "kctl::TemplateError", Msg: err.Error(), File: file}
}
