package docker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// demuxBuffer is the most a demux reads at once: a write to stdout or
// stderr carries up to this much.
const demuxBuffer = 256 << 10

// demux is stdcopy.StdCopy that reads greedily: each read takes whatever
// the engine has sent (up to demuxBuffer), and the frames found in it are
// written as one write per run of the same stream. A container writing
// fast produces 4-32 KiB frames; a reader that falls behind finds many in
// one read, so the tunnel sends a few large messages instead of many small
// ones (each hop's cost is mostly per message). A reader that keeps up
// writes each frame as it comes, so latency is unchanged.
func demux(stdout, stderr io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, demuxBuffer)
	out := make([]byte, 0, demuxBuffer)
	var (
		have    int    // bytes in buf
		rem     int    // payload bytes of the current frame not yet seen
		cur     byte   // the current frame's stream: 1 stdout, 2 stderr, 3 system error
		outS    byte   // the stream out holds
		sysErr  []byte // a system error frame's payload
		written int64
	)
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		w := stdout
		if outS == 2 {
			w = stderr
		}
		n, err := w.Write(out)
		written += int64(n)
		out = out[:0]
		return err
	}
	for {
		n, rerr := r.Read(buf[have:])
		have += n
		off := 0
		for off < have {
			if rem == 0 {
				if have-off < 8 {
					break // a partial header: read more
				}
				h := buf[off : off+8]
				switch h[0] {
				case 0, 1:
					cur = 1
				case 2, 3:
					cur = h[0]
				default:
					return written, fmt.Errorf("unrecognized stream %d in the engine's output", h[0])
				}
				rem = int(binary.BigEndian.Uint32(h[4:8]))
				off += 8
				continue
			}
			k := min(rem, have-off)
			if cur == 3 {
				sysErr = append(sysErr, buf[off:off+k]...)
			} else {
				if outS != cur {
					if err := flush(); err != nil {
						return written, err
					}
					outS = cur
				}
				out = append(out, buf[off:off+k]...)
			}
			rem -= k
			off += k
			if rem == 0 && cur == 3 {
				_ = flush()
				return written, fmt.Errorf("error from daemon in stream: %s", sysErr)
			}
		}
		if err := flush(); err != nil {
			return written, err
		}
		have = copy(buf, buf[off:have])
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				if have > 0 || rem > 0 {
					return written, io.ErrUnexpectedEOF
				}
				return written, nil
			}
			return written, rerr
		}
	}
}
