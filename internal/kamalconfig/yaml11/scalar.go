package yaml11

import (
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	reStringFast = regexp.MustCompile(`^[^\d.:-]?[[:alpha:]_\s!@#$%\^&*(){}<>|/\\~;=]+`)
	reNull       = regexp.MustCompile(`^(?i:null)$`)
	reTrue       = regexp.MustCompile(`^(?i:yes|true|on)$`)
	reFalse      = regexp.MustCompile(`^(?i:no|false|off)$`)
	reSexInt     = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}$`)
	reSexFloat   = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}\.[0-9_]*$`)
	reFloat      = regexp.MustCompile(`^[-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)?$`)
	reInfPos     = regexp.MustCompile(`^(?i:\+?\.inf)$`)
	reInfNeg     = regexp.MustCompile(`^(?i:-\.inf)$`)
	reNaN        = regexp.MustCompile(`^(?i:\.nan)$`)
	reIntBin     = regexp.MustCompile(`^[-+]?0b[0-1_,]+$`)
	reIntOct     = regexp.MustCompile(`^[-+]?0[0-7_,]+$`)
	reIntDec     = regexp.MustCompile(`^[-+]?(?:0|[1-9](?:[0-9]|,[0-9]|_[0-9])*)$`)
	reIntHex     = regexp.MustCompile(`^[-+]?0x[0-9a-fA-F_,]+$`)
	reDate       = regexp.MustCompile(`^\d{4}-(?:1[012]|0\d|\d)-(?:[12]\d|3[01]|0\d|\d)$`)
)

// resolveScalar reads a scalar as Psych's ScalarScanner (YAML 1.1) does.
func resolveScalar(n *yaml.Node) *Value {
	s := n.Value
	str := &Value{Kind: KindString, Str: s}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return str
	}
	if n.Style&yaml.TaggedStyle != 0 {
		switch n.Tag {
		case "!!str", "!binary", "!!binary":
			return str
		case "!!int":
			if v := parseRubyInt(s); v != nil {
				return v
			}
			return str
		case "!!float":
			if f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64); err == nil {
				return &Value{Kind: KindFloat, Float: f, Str: s}
			}
			return str
		case "!!null", "!!bool", "!!timestamp":
		default:
			return str
		}
	}
	return tokenize(s)
}

func tokenize(s string) *Value {
	str := &Value{Kind: KindString, Str: s}
	if s == "" || s == "~" {
		return &Value{Kind: KindNull, Str: s}
	}
	if reStringFast.MatchString(s) || strings.Contains(s, "\n") {
		if len(s) > 5 {
			return str
		}
		switch {
		case reNull.MatchString(s):
			return &Value{Kind: KindNull, Str: s}
		case reTrue.MatchString(s):
			return &Value{Kind: KindBool, Bool: true, Str: s}
		case reFalse.MatchString(s):
			return &Value{Kind: KindBool, Bool: false, Str: s}
		}
		return str
	}
	switch {
	case reDate.MatchString(s):
		return str // Date: kept as its text
	case reInfPos.MatchString(s):
		return &Value{Kind: KindFloat, Float: math.Inf(1), Str: s}
	case reInfNeg.MatchString(s):
		return &Value{Kind: KindFloat, Float: math.Inf(-1), Str: s}
	case reNaN.MatchString(s):
		return &Value{Kind: KindFloat, Float: math.NaN(), Str: s}
	case strings.HasPrefix(s, ":") && len(s) > 1:
		sym := s[1:]
		if len(sym) >= 2 && (sym[0] == '"' && sym[len(sym)-1] == '"' || sym[0] == '\'' && sym[len(sym)-1] == '\'') {
			sym = sym[1 : len(sym)-1]
		}
		return &Value{Kind: KindSymbol, Str: sym}
	case reSexInt.MatchString(s):
		neg := strings.HasPrefix(s, "-")
		t := strings.TrimLeft(s, "+-")
		var n int64
		for _, part := range strings.Split(strings.ReplaceAll(t, "_", ""), ":") {
			d, _ := strconv.ParseInt(part, 10, 64)
			n = n*60 + d
		}
		if neg {
			n = -n
		}
		return &Value{Kind: KindInt, Int: n, Str: s}
	case reSexFloat.MatchString(s):
		neg := strings.HasPrefix(s, "-")
		t := strings.TrimLeft(s, "+-")
		var f float64
		for _, part := range strings.Split(strings.ReplaceAll(t, "_", ""), ":") {
			d, _ := strconv.ParseFloat(part, 64)
			f = f*60 + d
		}
		if neg {
			f = -f
		}
		return &Value{Kind: KindFloat, Float: f, Str: s}
	case reFloat.MatchString(s):
		if s == "." || s == "-." || s == "+." {
			return str
		}
		t := strings.NewReplacer("_", "", ",", "").Replace(s)
		if strings.HasSuffix(t, ".") {
			t += "0"
		}
		if strings.HasPrefix(t, ".") || strings.HasPrefix(t, "-.") || strings.HasPrefix(t, "+.") {
			t = strings.Replace(t, ".", "0.", 1)
		}
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return &Value{Kind: KindFloat, Float: f, Str: s}
		}
		return str
	}
	if v := parseRubyInt(s); v != nil {
		return v
	}
	return str
}

func parseRubyInt(s string) *Value {
	clean := strings.NewReplacer("_", "", ",", "").Replace(s)
	neg := strings.HasPrefix(clean, "-")
	body := strings.TrimLeft(clean, "+-")
	base := 10
	switch {
	case reIntBin.MatchString(s):
		base, body = 2, body[2:]
	case reIntHex.MatchString(s):
		base, body = 16, body[2:]
	case reIntOct.MatchString(s):
		base, body = 8, body[1:]
	case reIntDec.MatchString(s):
	default:
		return nil
	}
	n, err := strconv.ParseInt(body, base, 64)
	if err != nil {
		return nil
	}
	if neg {
		n = -n
	}
	return &Value{Kind: KindInt, Int: n, Str: s}
}
