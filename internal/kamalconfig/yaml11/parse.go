package yaml11

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is a document Psych would refuse to load; every *Error wraps it.
var ErrInvalid = errors.New("yaml11: invalid document")

// Error is a document that could not be loaded, with where.
type Error struct {
	// Kind is the Ruby exception class ("Psych::SyntaxError"), or "" for
	// documents Psych loads but kctl refuses (too deep, too many aliases).
	Kind string
	Msg  string
	Pos  Pos
}

func (e *Error) Error() string {
	if p := e.Pos.String(); p != "" {
		return p + ": " + e.Msg
	}
	return e.Msg
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

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

// Parse loads text the way Psych's unsafe_load does for Kamal, keeping
// positions. lineMap optionally maps rendered lines back to template lines.
func Parse(file string, text []byte, lineMap []int) (*Value, error) {
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
		return nil, &Error{Pos: pos, Msg: "YAML syntax error: " + msg, Kind: "Psych::SyntaxError"}
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
