package probes

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/segmentio/kafka-go/compress"
)

// A compressed batch on the canary topic inflates no further than
// maxCanaryInflated through the codec table kafka-go reads batches with:
// 64 MiB of zeros, compressed by each of its codecs, stops at the limit
// with a reason that names it, having allocated a small part of 64 MiB.
func TestKafkaCanaryInflationIsBounded(t *testing.T) {
	boundKafkaGoInflation()
	zeros := make([]byte, 1<<20)
	for _, c := range []compress.Compression{compress.Gzip, compress.Snappy, compress.Lz4, compress.Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			var packed bytes.Buffer
			w := c.Codec().NewWriter(&packed)
			for range 64 {
				w.Write(zeros)
			}
			w.Close()
			var n int64
			var err error
			grew := allocatedBy(func() {
				r := c.Codec().NewReader(bytes.NewReader(packed.Bytes()))
				n, err = io.Copy(io.Discard, r)
				r.Close()
			})
			if !errors.Is(err, ErrResponseTooLarge) || n != maxCanaryInflated {
				t.Fatalf("a %d KiB %s bomb inflated to %d bytes (%v), want %d and a refusal", packed.Len()>>10, c, n, err, maxCanaryInflated)
			}
			if grew > 16<<20 {
				t.Errorf("inflating allocated %d MiB", grew>>20)
			}
		})
	}
}
