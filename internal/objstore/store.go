// Package objstore is kwickmig's one object-store abstraction. The S3
// implementation lives in objstore/s3 (the only importer of aws-sdk-go-v2's S3
// client); callers never parse SDK errors, they ask IsNotExist/IsRetryable.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is matched (errors.Is) by errors for absent keys or buckets.
var ErrNotExist = errors.New("object does not exist")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	ETag     string // without quotes
	Modified time.Time
	Checksum string // "crc32c:<base64>", "crc64nvme:<base64>" or "sha256:<base64>" when the store has one, else ""
	// ChecksumType says what Checksum covers: ChecksumFullObject (the whole
	// object's bytes), ChecksumComposite (a checksum of the parts' checksums,
	// written "<base64>-<parts>") or "" when the store did not say.
	ChecksumType string
	// Parts is the number of parts of a multipart object when the store
	// reports it (0: unknown or not multipart).
	Parts    int
	Metadata map[string]string
}

// Checksum types (S3's x-amz-checksum-type).
const (
	ChecksumFullObject = "FULL_OBJECT"
	ChecksumComposite  = "COMPOSITE"
)

// PartHeader is implemented by stores that can describe one part of a
// multipart object (S3: HeadObject with partNumber). verify files uses it
// to learn the part sizes of objects that only carry a composite checksum.
type PartHeader interface {
	// HeadPart returns the size of part n (1-based) of key and the object's
	// number of parts (1 for an object uploaded in one piece).
	HeadPart(ctx context.Context, key string, n int) (size int64, parts int, err error)
}

// PutOptions carry per-object attributes.
type PutOptions struct {
	ContentType string
	// Metadata becomes x-amz-meta-* headers.
	Metadata map[string]string
	// CRC32C, when non-zero length, is the base64 CRC32C of the body; the
	// store sends it so the server rejects corrupted bytes. If empty the
	// store computes one itself. Objects uploaded in parts (above the
	// store's multipart threshold) carry it too, as a full-object CRC32C
	// (not a checksum of the parts' checksums), so a stored checksum always
	// compares with the whole file's CRC32C.
	CRC32C string
	// BeforeComplete, if set, runs after every part of a multipart upload
	// was stored and before the upload is completed; an error aborts the
	// upload (the previous object, if any, stays) and is returned by Put.
	BeforeComplete func() error
}

// PutResult is what the server confirmed.
type PutResult struct {
	ETag   string
	CRC32C string
}

// Store is a bucket (and optional key prefix, applied by the implementation).
// Keys passed in and returned are relative to that prefix. All methods are
// safe for concurrent use.
type Store interface {
	// Check proves the bucket exists and the credentials may use it, with one
	// cheap request. Returns an error matching ErrNotExist for a missing bucket.
	Check(ctx context.Context) error
	// Put stores size bytes read from body under key. body is read from its
	// current position; it may be read more than once on retries (it must be
	// an io.ReadSeeker for that; the implementation seeks back to the start
	// position, or reads sections of it when it is an io.ReaderAt). The
	// object exists with exactly these bytes when Put returns nil. When Put
	// returns (with or without an error) the store no longer reads body:
	// the caller may reuse its buffer at once.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) (PutResult, error)
	// Head returns the object's info, including its stored checksum when
	// available. Returns an error matching ErrNotExist if key is absent.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Open returns the object's bytes. Returns an error matching ErrNotExist
	// if key is absent.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// List calls fn once per object whose key starts with prefix, in
	// ascending key order, from the calling goroutine. startAfter, if not
	// empty, skips keys <= startAfter (for listing key ranges in parallel).
	// An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix, startAfter string, fn func(ObjectInfo) error) error
	// Delete removes key. Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
}
