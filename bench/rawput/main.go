// Command rawput is the raw-PUT floor: the least client work that uploads the
// benchmark's receipts. It generates the same keys and bodies as gentree in
// memory (no file system) and PUTs them with aws-sdk-go-v2, -c requests in
// flight: one plain PutObject per receipt, with the body's CRC32C supplied
// (x-amz-checksum-crc32c, so the SDK neither hashes it again for the checksum
// nor switches to an aws-chunked trailer), path-style, and a connection pool as
// large as the concurrency. What remains is what the server can absorb.
//
//	rawput -bucket B -n 100000 [-seed 1] [-c 64] [-unsigned-payload] [-metadata]
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/bench/internal/receipts"
	"github.com/kwick/kwickmig/bench/internal/s3env"
)

var (
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
	contentType = "application/json"
)

func main() {
	bucket := flag.String("bucket", "", "destination bucket (must exist)")
	n := flag.Int("n", 100000, "number of receipts")
	seed := flag.Uint64("seed", 1, "generator seed (as gentree)")
	conc := flag.Int("c", 64, "requests in flight")
	unsigned := flag.Bool("unsigned-payload", false, "sign UNSIGNED-PAYLOAD instead of hashing each body with SHA-256")
	withMeta := flag.Bool("metadata", false, "also send Content-Type and x-amz-meta-mtime, as kwickmig does (not part of the floor)")
	flag.Parse()
	if *bucket == "" {
		fmt.Fprintln(os.Stderr, "usage: rawput -bucket B -n N [-seed S] [-c 64]")
		os.Exit(2)
	}
	var optFns []func(*s3.Options)
	if *unsigned {
		optFns = append(optFns, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	}
	client, err := s3env.Client(*conc, optFns...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawput:", err)
		os.Exit(1)
	}
	l := receipts.Layout{N: *n, Seed: *seed}
	ctx := context.Background()
	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	for range *conc {
		wg.Go(func() {
			buf := make([]byte, 0, receipts.MaxSize)
			var sum [4]byte
			for {
				i := int(next.Add(1) - 1)
				if i >= l.N {
					return
				}
				f := l.File(i)
				body := l.Body(buf, f, 0, f.Size)
				binary.BigEndian.PutUint32(sum[:], crc32.Checksum(body, castagnoli))
				crc := base64.StdEncoding.EncodeToString(sum[:])
				size := int64(len(body))
				in := &s3.PutObjectInput{
					Bucket:         bucket,
					Key:            &f.Rel,
					Body:           bytes.NewReader(body),
					ContentLength:  &size,
					ChecksumCRC32C: &crc,
				}
				if *withMeta {
					in.ContentType = &contentType
					in.Metadata = map[string]string{"mtime": strconv.FormatInt(f.MTime.UnixNano(), 10)}
				}
				_, err := client.PutObject(ctx, in)
				if err != nil {
					if failed.Add(1) <= 5 {
						fmt.Fprintf(os.Stderr, "rawput: put %s: %v\n", f.Rel, err)
					}
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "rawput: %d PUTs in %.2fs (%.0f/s), %d failed\n", l.N, el, float64(l.N)/el, failed.Load())
	if failed.Load() > 0 {
		os.Exit(1)
	}
}
