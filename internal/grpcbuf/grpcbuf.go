// Package grpcbuf is the gRPC buffer pool of kctl's connections. gRPC's
// default pool has tiers of 256 B, 4, 16 and 32 KiB and 1 MiB, and zeroes a
// buffer's whole capacity on every Get: a message just over 32 KiB (a
// stream's 32 KiB output chunk plus its framing) takes a 1 MiB buffer and
// clears it, which made clearing memory the largest cost of an `exec cat`
// through the controllers (docs/streams.md). With a tier at every power of
// two up to 1 MiB a buffer is at most twice its message.
//
// It is a leaf: kctl, the agent and the controller use it.
package grpcbuf

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// Pool is the shared pool.
var Pool mem.BufferPool

func init() {
	p, err := mem.NewBinaryTieredBufferPool(8, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20)
	if err != nil {
		panic(err)
	}
	Pool = p
}

// ServerOption makes a server use Pool.
func ServerOption() grpc.ServerOption { return experimental.BufferPool(Pool) }

// DialOption makes a client connection use Pool.
func DialOption() grpc.DialOption { return experimental.WithBufferPool(Pool) }

// WriteBuffer is the gRPC write buffer of kctl's connections. The buffer
// is shared (SharedWriteBuffer: taken from a pool while frames are
// flushed, so an idle connection holds none), and a large one turns a
// stream's 16 KiB HTTP/2 frames into few large writes: with 4 KiB every
// frame was its own TLS record and write system call, and an `exec cat`
// through two controllers ran at half the speed.
const WriteBuffer = 64 << 10

// ReadBuffer is the gRPC read buffer of a connection that carries streams
// and of which there are few (kctl's, a relaying controller's to its
// peers). A controller's server keeps its 4 KiB read buffer per connection:
// agents' sessions stay cheap (docs/spine.md).
const ReadBuffer = 64 << 10
