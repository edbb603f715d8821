package kctl

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	streamv1 "github.com/kctl-dev/kctl/gen/kctl/stream/v1"
	"github.com/kctl-dev/kctl/internal/wirelimit"
)

// execInteractive runs start with kctl's stdin attached: in raw mode with a
// remote terminal of the same size when stdin is a terminal (Ctrl-C and
// Ctrl-D travel as keys to the remote process, SIGWINCH as resizes), else
// as a pipe whose end closes the remote stdin. It returns the remote exit
// status.
func (g *globals) execInteractive(cmd *cobra.Command, start *streamv1.ExecStart, server bool) (int, error) {
	stdin := cmd.InOrStdin()
	stdout := cmd.OutOrStdout()
	inFile, _ := stdin.(*os.File)
	tty := inFile != nil && term.IsTerminal(int(inFile.Fd()))
	start.Tty = tty
	if tty {
		start.Size = termSize(inFile, stdout)
		old, err := term.MakeRaw(int(inFile.Fd()))
		if err != nil {
			return -1, err
		}
		defer func() { _ = term.Restore(int(inFile.Fd()), old) }()
	}
	feed := func(s *execSession) {
		if tty {
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			go func() {
				for range winch {
					_ = s.send(&streamv1.ExecInput{Msg: &streamv1.ExecInput_Resize{Resize: termSize(inFile, stdout)}})
				}
			}()
		}
		buf := make([]byte, wirelimit.MaxStdinChunkBytes)
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				if s.send(&streamv1.ExecInput{Msg: &streamv1.ExecInput_Stdin{Stdin: buf[:n]}}) != nil {
					return
				}
			}
			if errors.Is(err, io.EOF) && !tty {
				_ = s.send(&streamv1.ExecInput{Msg: &streamv1.ExecInput_CloseStdin{CloseStdin: &streamv1.CloseStdin{}}})
				return
			}
			if err != nil {
				return
			}
		}
	}
	return g.execStream(cmd.Context(), start, server, feed, stdout, cmd.ErrOrStderr())
}

// termSize is the terminal's size (stdin's, else stdout's).
func termSize(in *os.File, out io.Writer) *streamv1.TermSize {
	for _, f := range []any{in, out} {
		if f, ok := f.(*os.File); ok && f != nil {
			if w, h, err := term.GetSize(int(f.Fd())); err == nil {
				return &streamv1.TermSize{Rows: uint32(h), Cols: uint32(w)}
			}
		}
	}
	return &streamv1.TermSize{Rows: 24, Cols: 80}
}
