package shellwords_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/kctl-dev/kctl/internal/shellwords"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"bin/jobs --verbose", []string{"bin/jobs", "--verbose"}},
		{" a\t b\nc ", []string{"a", "b", "c"}},
		{`'a b' "c d"`, []string{"a b", "c d"}},
		{`'it''s'`, []string{"its"}},
		{`a'b'"c"d`, []string{"abcd"}},
		{`''`, []string{""}},
		{`"" x`, []string{"", "x"}},
		{`"a\"b\\c\$d\` + "`" + `e"`, []string{"a\"b\\c$d`e"}},
		{`"a\qb"`, []string{`a\qb`}},
		{"\"a\\\nb\"", []string{"ab"}},
		{`'a\b'`, []string{`a\b`}},
		{`a\ b`, []string{"a b"}},
		{`a\"b`, []string{`a"b`}},
		{"a\\\nb", []string{"ab"}},
		{`a\`, []string{`a\`}},
		{`sh -c "echo $HOME"`, []string{"sh", "-c", "echo $HOME"}},
		{"ünï 'cö de'", []string{"ünï", "cö de"}},
	}
	for _, tt := range tests {
		got, err := shellwords.Split(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSplitUnterminated(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{`'open`, shellwords.ErrUnterminatedSingle},
		{`a "open`, shellwords.ErrUnterminatedDouble},
		{`"a\"`, shellwords.ErrUnterminatedDouble},
	}
	for _, tt := range tests {
		if _, err := shellwords.Split(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("Split(%q) error = %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"plain-1.2_x,y:z+w/v@u", "plain-1.2_x,y:z+w/v@u"},
		{"a b", `a\ b`},
		{`{"a":"b"}`, `\{\"a\":\"b\"\}`},
		{"$HOME", `\$HOME`},
		{"new\nline", "new'\n'line"},
		{"ünï", "ünï"},
	}
	for _, tt := range tests {
		if got := shellwords.Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEscapeSplitRoundTrip(t *testing.T) {
	for _, s := range []string{`{"a/B":"x y","c":"$q'\""}`, "", "plain", "new\nline", "tab\there", "back\\slash"} {
		got, err := shellwords.Split("cmd " + shellwords.Escape(s))
		if err != nil || len(got) != 2 || got[1] != s {
			t.Errorf("Split(cmd Escape(%q)) = %q, %v; want [cmd %q]", s, got, err, s)
		}
	}
}
