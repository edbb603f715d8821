package blobstore

import (
	"context"
	"errors"
	"io"

	fleetv1 "github.com/kctl-dev/kctl/gen/kctl/fleet/v1"
)

// Chunk is the size of the chunks blobs travel in (BlobService Put and
// Get); a controller refuses a larger one.
const Chunk = 1 << 20

// Upload sends size bytes from r as the blob digest through cl's Put: the
// header, then chunks of at most Chunk. copy marks a controller's copy to
// another. It returns the answer.
func Upload(ctx context.Context, cl fleetv1.BlobServiceClient, digest string, size int64, copy bool, r io.Reader) (*fleetv1.PutResponse, error) {
	st, err := cl.Put(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&fleetv1.PutRequest{Msg: &fleetv1.PutRequest_Header{Header: &fleetv1.PutHeader{Sha256: digest, Size: size, Copy: copy}}}); err != nil {
		return st.CloseAndRecv() // the server's reason
	}
	buf := make([]byte, Chunk)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := st.Send(&fleetv1.PutRequest{Msg: &fleetv1.PutRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return st.CloseAndRecv()
			}
		}
		if errors.Is(rerr, io.EOF) {
			return st.CloseAndRecv()
		}
		if rerr != nil {
			return nil, rerr
		}
	}
}
