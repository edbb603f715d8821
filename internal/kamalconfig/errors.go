package kamalconfig

import (
	"errors"
	"fmt"

	"github.com/kctl-dev/kctl/internal/kamalconfig/erb"
	"github.com/kctl-dev/kctl/internal/kamalconfig/yaml11"
)

// Sentinel errors, wrapped by *Error so callers can errors.Is them.
var (
	// ErrConfig is a configuration Kamal would refuse (Kamal::ConfigurationError).
	ErrConfig = errors.New("kamalconfig: invalid configuration")
	// ErrNotFound is a missing configuration file.
	ErrNotFound = errors.New("kamalconfig: configuration file not found")
	// ErrTemplate is an ERB template that could not be rendered.
	ErrTemplate = errors.New("kamalconfig: template error")
	// ErrDestination is a missing required destination.
	ErrDestination = errors.New("kamalconfig: destination required")
)

// Error is a refusal with Kamal's message and, where known, the position of
// the offending key (file:line:column).
type Error struct {
	// Kind is Kamal's exception class, e.g. "Kamal::ConfigurationError".
	Kind string
	// Msg is Kamal's message, e.g. "servers/web: should be an array or a hash".
	Msg string
	// Pos is where the problem is, when known.
	Pos yaml11.Pos
	// Hint is optional advice printed after the message.
	Hint string
	// Err is the sentinel this error wraps.
	Err error
}

func (e *Error) Error() string {
	s := e.Msg
	if p := e.Pos.String(); p != "" {
		s = p + ": " + s
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// KamalMessage is the first line Kamal itself would print, "Class: message".
func (e *Error) KamalMessage() string {
	kind := e.Kind
	if kind == "" {
		kind = "Kamal::ConfigurationError"
	}
	return fmt.Sprintf("%s: %s", kind, e.Msg)
}

func (e *Error) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	return ErrConfig
}

func cfgErr(pos yaml11.Pos, format string, args ...any) *Error {
	return &Error{Kind: "Kamal::ConfigurationError", Msg: fmt.Sprintf(format, args...), Pos: pos, Err: ErrConfig}
}

// parseYAML loads one rendered file, translating a YAML refusal to *Error.
func parseYAML(file string, text []byte, lineMap []int) (*yaml11.Value, error) {
	v, err := yaml11.Parse(file, text, lineMap)
	var ye *yaml11.Error
	if errors.As(err, &ye) {
		return nil, &Error{Kind: ye.Kind, Msg: ye.Msg, Pos: ye.Pos, Err: ErrConfig}
	}
	return v, err
}

// renderTemplate renders one ERB file, translating a refusal to *Error.
func renderTemplate(src []byte, o *erb.Options) ([]byte, []int, error) {
	out, lineMap, err := erb.Render(src, o)
	var te *erb.Error
	if errors.As(err, &te) {
		return nil, nil, &Error{Kind: te.Kind, Msg: te.Msg, Hint: te.Hint, Err: ErrTemplate,
			Pos: yaml11.Pos{File: te.File, Line: te.Line, Column: te.Column}}
	}
	return out, lineMap, err
}
