package grpcbuf

import "testing"

// A buffer of 4 KiB or more is at most twice the message it holds: a stream's 32 KiB chunk
// plus framing must not take (and zero) a 1 MiB buffer.
func TestPool_BufferAtMostTwiceTheMessage(t *testing.T) {
	for _, n := range []int{5 << 10, 33 << 10, 100 << 10, 300 << 10, 1 << 20} {
		b := Pool.Get(n)
		if len(*b) != n || cap(*b) > 2*n {
			t.Errorf("Get(%d): len %d cap %d, want len %d and cap <= %d", n, len(*b), cap(*b), n, 2*n)
		}
		Pool.Put(b)
	}
}
