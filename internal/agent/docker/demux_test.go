package docker

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/docker/docker/pkg/stdcopy"
)

// frames writes payloads as the engine frames them.
func frames(t *testing.T, parts ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	for i, p := range parts {
		w := stdcopy.NewStdWriter(&b, stdcopy.Stdout)
		if i%3 == 2 {
			w = stdcopy.NewStdWriter(&b, stdcopy.Stderr)
		}
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// countWriter records the writes it gets.
type countWriter struct {
	bytes.Buffer
	writes int
}

func (c *countWriter) Write(p []byte) (int, error) { c.writes++; return c.Buffer.Write(p) }

// demux splits the engine's frames as stdcopy does, whatever the reads
// return (one byte at a time, or everything at once), and coalesces the
// frames one read finds into one write per stream run.
func TestDemux_MatchesStdCopyAndCoalesces(t *testing.T) {
	var parts []string
	for i := range 300 {
		parts = append(parts, strings.Repeat(string(rune('a'+i%26)), 1+i*37%5000))
	}
	in := frames(t, parts...)
	var wantOut, wantErr bytes.Buffer
	if _, err := stdcopy.StdCopy(&wantOut, &wantErr, bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"whole":      bytes.NewReader(in),
		"one byte":   iotest.OneByteReader(bytes.NewReader(in)),
		"half reads": iotest.HalfReader(bytes.NewReader(in)),
	} {
		var out, errw countWriter
		n, err := demux(&out, &errw, r)
		if err != nil {
			t.Fatalf("%s: demux: %v", name, err)
		}
		if !bytes.Equal(out.Bytes(), wantOut.Bytes()) || !bytes.Equal(errw.Bytes(), wantErr.Bytes()) {
			t.Fatalf("%s: demux split differs from stdcopy's", name)
		}
		if int(n) != wantOut.Len()+wantErr.Len() {
			t.Errorf("%s: demux = %d bytes, want %d", name, n, wantOut.Len()+wantErr.Len())
		}
		if name == "whole" && out.writes > 210 {
			t.Errorf("whole: %d stdout writes for 200 stdout frames read at once, want them coalesced per run", out.writes)
		}
	}
	// Only 100 stdout/stderr runs exist: coalescing a 256 KiB read must
	// give far fewer writes than frames.
	var out, errw countWriter
	if _, err := demux(&out, &errw, bytes.NewReader(frames(t, strings.Repeat("x", 100), strings.Repeat("y", 100)))); err != nil || out.writes != 1 || out.String() != strings.Repeat("x", 100)+strings.Repeat("y", 100) {
		t.Errorf("two stdout frames in one read: %d writes, %q, %v; want one write", out.writes, out.String(), err)
	}
	// A truncated stream and the engine's system error are errors.
	if _, err := demux(io.Discard, io.Discard, bytes.NewReader(in[:len(in)-3])); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated: %v, want unexpected EOF", err)
	}
	var sys bytes.Buffer
	_, _ = stdcopy.NewStdWriter(&sys, stdcopy.Systemerr).Write([]byte("boom"))
	if _, err := demux(io.Discard, io.Discard, &sys); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("system error: %v, want boom", err)
	}
}
