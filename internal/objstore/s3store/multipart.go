package s3store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	gosync "sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/objstore"
)

// Multipart uploads are written here on the S3 client rather than with
// feature/s3/transfermanager, for two reasons measured on v0.5.7:
//
//   - Memory. The transfer manager buffers every part: it reads the first
//     MultipartUploadThreshold bytes with io.ReadAll (64 MiB, grown by
//     doubling) and then fills a pool of Concurrency+1 part buffers per
//     upload. That is ~200 MB of RSS per large file in flight (12 files of
//     80 MiB peaked at 2.1 GB). Here every part is streamed from the body
//     by offset (io.ReaderAt: the file itself), so a large file costs a few
//     64 KiB copy buffers, whatever its size or the number in flight.
//   - Retries. The SDK rewinds one body for every attempt, which the HTTP
//     transport of the failed attempt may still be reading; here each
//     attempt of a part reads its own io.SectionReader over the file.
//
// The checksum is a FULL_OBJECT CRC32C equal to the whole file's CRC32C
// (PutOptions.CRC32C, which files sync has already computed), so a stored
// checksum always compares like with like (a COMPOSITE "…-N" checksum would
// differ from every file's CRC32C). Each part carries its own CRC32C, so the
// server rejects a corrupted part, and CompleteMultipartUpload carries the
// whole object's, which the server checks against the combination of the
// parts' CRCs: the object exists only if every byte arrived intact.

// partsInFlight is the number of parts of one object uploaded at once.
const partsInFlight = 4

// maxParts is S3's limit on the parts of one object.
const maxParts = 10000

// copyBufs are the 64 KiB buffers used to hash parts.
var copyBufs = gosync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// putMultipart uploads size bytes of body (from its current position) in
// parts under the full key.
func (s *Store) putMultipart(ctx context.Context, full string, body io.ReadSeeker, size int64, o objstore.PutOptions) (objstore.PutResult, error) {
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return objstore.PutResult{}, fmt.Errorf("put %s: %w", full, err)
	}
	ra := readerAt(body)
	sum := o.CRC32C
	if sum == "" {
		h := crc32.New(objstore.Castagnoli)
		if err := hashRange(h, ra, start, size); err != nil {
			return objstore.PutResult{}, fmt.Errorf("put %s: read body: %w", full, err)
		}
		sum = objstore.EncodeCRC32C(h.Sum32())
	}
	partSize := s.opts.PartSize
	if (size+partSize-1)/partSize > maxParts {
		partSize = (size + maxParts - 1) / maxParts
	}
	var ct *string
	if o.ContentType != "" {
		ct = aws.String(o.ContentType)
	}
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &s.bucket, Key: &full, ContentType: ct, Metadata: o.Metadata,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ChecksumType:      types.ChecksumTypeFullObject,
	})
	if err != nil {
		return objstore.PutResult{}, wrap("put", full, err)
	}
	uploadID := created.UploadId

	nparts := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partsInFlight)
	for i := range nparts {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		g.Go(func() error {
			p, err := s.uploadPart(gctx, full, uploadID, int32(i+1), ra, start+off, n)
			parts[i] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		s.abort(full, uploadID)
		if ctx.Err() != nil {
			return objstore.PutResult{}, ctx.Err()
		}
		return objstore.PutResult{}, err
	}
	sort.Slice(parts, func(a, b int) bool { return aws.ToInt32(parts[a].PartNumber) < aws.ToInt32(parts[b].PartNumber) })
	if o.BeforeComplete != nil {
		// The caller's last word (files sync: did the file change while
		// its parts were read?): refused, nothing replaces the object.
		if err := o.BeforeComplete(); err != nil {
			s.abort(full, uploadID)
			return objstore.PutResult{}, err
		}
	}
	out, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &full, UploadId: uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		ChecksumCRC32C:  aws.String(sum),
		ChecksumType:    types.ChecksumTypeFullObject,
		MpuObjectSize:   aws.Int64(size),
	})
	if err != nil {
		s.abort(full, uploadID)
		return objstore.PutResult{}, wrap("put", full, err)
	}
	return objstore.PutResult{ETag: unquote(aws.ToString(out.ETag)), CRC32C: sum}, nil
}

// uploadPart hashes one part, then sends it. Every attempt reads its own
// SectionReader over the body, so a retry never shares a reader with an
// attempt the transport may still be reading; the SDK's own retries are off
// for this call and the SDK's retryer decides which errors to retry and how
// long to wait.
func (s *Store) uploadPart(ctx context.Context, full string, uploadID *string, num int32, ra io.ReaderAt, off, n int64) (types.CompletedPart, error) {
	h := crc32.New(objstore.Castagnoli)
	if err := hashRange(h, ra, off, n); err != nil {
		return types.CompletedPart{}, fmt.Errorf("put %s: read part %d: %w", full, num, err)
	}
	partSum := objstore.EncodeCRC32C(h.Sum32())
	retryer := s.client.Options().Retryer
	for attempt := 1; ; attempt++ {
		// A part the endpoint stops reading ends after one request timeout
		// without progress (stall.go), not after its size-based deadline:
		// that is an unreachable endpoint, for the caller's outage logic.
		sr := newStallReader(io.NewSectionReader(ra, off, n), n)
		wctx, stopWatch := watchStall(ctx, sr, s.opts.RequestTimeout)
		out, err := s.client.UploadPart(wctx, &s3.UploadPartInput{
			Bucket: &s.bucket, Key: &full, UploadId: uploadID, PartNumber: aws.Int32(num),
			Body:           sr,
			ContentLength:  aws.Int64(n),
			ChecksumCRC32C: aws.String(partSum),
		}, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
		if stopWatch() && ctx.Err() == nil {
			return types.CompletedPart{}, objstore.Unreachable(fmt.Errorf("put %s: part %d: %w", full, num,
				&attemptTimeoutError{limit: s.opts.RequestTimeout, size: n, stalled: true}))
		}
		if err == nil {
			return types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32C: aws.String(partSum)}, nil
		}
		var d time.Duration
		retry := ctx.Err() == nil && attempt < s.opts.MaxAttempts && retryer.IsErrorRetryable(err)
		if retry {
			// An error here is the retryer saying "no more attempts".
			var derr error
			d, derr = retryer.RetryDelay(attempt, err)
			retry = derr == nil
		}
		if !retry {
			if attempt > 1 {
				return types.CompletedPart{}, wrap("put", full, fmt.Errorf("part %d: %d attempts: %w", num, attempt, err))
			}
			return types.CompletedPart{}, wrap("put", full, fmt.Errorf("part %d: %w", num, err))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return types.CompletedPart{}, ctx.Err()
		case <-t.C:
		}
	}
}

// abort removes the parts of a failed upload (they would be billed until a
// lifecycle rule removes them), on a fresh context: the run's may be gone.
func (s *Store) abort(full string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &full, UploadId: uploadID})
}

// hashRange writes n bytes of ra at off into h.
func hashRange(h io.Writer, ra io.ReaderAt, off, n int64) error {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	got, err := io.CopyBuffer(h, io.NewSectionReader(ra, off, n), *buf)
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readerAt returns body as an io.ReaderAt: itself when it is one (a file,
// an io.SectionReader, a bytes.Reader), else an adapter that serialises
// reads through Seek (bodies the callers pass today are all ReaderAts).
func readerAt(body io.ReadSeeker) io.ReaderAt {
	if ra, ok := body.(io.ReaderAt); ok {
		return ra
	}
	return &seekReaderAt{rs: body}
}

type seekReaderAt struct {
	mu gosync.Mutex
	rs io.ReadSeeker
}

func (r *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(r.rs, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}
