package s3store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/kwick/kwickmig/internal/objstore"
)

// Check issues one HeadBucket: it proves that the bucket exists and that the
// credentials may use it.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	// Fatal: a missing bucket (also ErrNotExist), 403, TLS verification;
	// Unreachable: no answer (classify.go).
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NotFound", "NoSuchBucket":
			return objstore.Fatal(&notExistError{what: "bucket " + s.bucket, err: errors.New("does not exist")})
		case "Forbidden", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return objstore.Fatal(fmt.Errorf("bucket %s: access denied (check credentials and permissions): %s", s.bucket, ae.ErrorCode()))
		}
	}
	return classify("bucket "+s.bucket, err)
}

// Put uploads body. Bodies above the multipart threshold are streamed in
// parts with a full-object CRC32C (multipart.go); the rest are one PutObject carrying the CRC32C so the
// server rejects corrupted bytes.
func (s *Store) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, o objstore.PutOptions) (objstore.PutResult, error) {
	res, err := s.put(ctx, key, body, size, o)
	if err != nil && !errors.Is(err, objstore.ErrFatal) {
		// A PUT answered 404 by something that is not S3 (no S3 error
		// code: a misrouted proxy's page) or with any code but
		// NoSuchUpload fails every other PUT the same way: fatal, not one
		// failed file after another.
		if status, code := statusOf(err); status == http.StatusNotFound && code != "NoSuchUpload" {
			return res, objstore.Fatal(err)
		}
	}
	return res, err
}

func (s *Store) put(ctx context.Context, key string, body io.ReadSeeker, size int64, o objstore.PutOptions) (objstore.PutResult, error) {
	full := s.prefix + key
	var ct *string
	if o.ContentType != "" {
		ct = aws.String(o.ContentType)
	}
	if size > s.opts.MultipartThreshold {
		return s.putMultipart(ctx, full, body, size, o)
	}
	sum := o.CRC32C
	if sum == "" {
		start, err := body.Seek(0, io.SeekCurrent)
		if err != nil {
			return objstore.PutResult{}, fmt.Errorf("put %s: %w", full, err)
		}
		h := crc32.New(objstore.Castagnoli)
		if _, err := io.Copy(h, body); err != nil {
			return objstore.PutResult{}, fmt.Errorf("put %s: read body: %w", full, err)
		}
		if _, err := body.Seek(start, io.SeekStart); err != nil {
			return objstore.PutResult{}, fmt.Errorf("put %s: %w", full, err)
		}
		sum = objstore.EncodeCRC32C(h.Sum32())
	}
	if s.fast != nil {
		return s.fast.put(ctx, full, body, size, o, sum)
	}
	out, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            &full,
		Body:           body,
		ContentLength:  aws.Int64(size),
		ContentType:    ct,
		Metadata:       o.Metadata,
		ChecksumCRC32C: aws.String(sum),
	})
	if err != nil {
		return objstore.PutResult{}, wrap("put", full, err)
	}
	return objstore.PutResult{ETag: unquote(aws.ToString(out.ETag)), CRC32C: sum}, nil
}

// Head returns the object's size, ETag, metadata and stored checksum.
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	full := s.prefix + key
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &s.bucket, Key: &full, ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return objstore.ObjectInfo{}, wrap("head", full, err)
	}
	info := objstore.ObjectInfo{
		Key:      key,
		Size:     aws.ToInt64(out.ContentLength),
		ETag:     unquote(aws.ToString(out.ETag)),
		Metadata: out.Metadata,
	}
	if out.LastModified != nil {
		info.Modified = *out.LastModified
	}
	switch {
	case out.ChecksumCRC32C != nil:
		info.Checksum = "crc32c:" + *out.ChecksumCRC32C
	case out.ChecksumCRC64NVME != nil:
		info.Checksum = "crc64nvme:" + *out.ChecksumCRC64NVME
	case out.ChecksumSHA256 != nil:
		info.Checksum = "sha256:" + *out.ChecksumSHA256
	}
	info.ChecksumType = string(out.ChecksumType)
	info.Parts = int(aws.ToInt32(out.PartsCount))
	return info, nil
}

// HeadPart returns the size of part n of key and the object's part count,
// with one HeadObject?partNumber=n.
func (s *Store) HeadPart(ctx context.Context, key string, n int) (int64, int, error) {
	full := s.prefix + key
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &full, PartNumber: aws.Int32(int32(n))})
	if err != nil {
		return 0, 0, wrap("head", full, err)
	}
	parts := int(aws.ToInt32(out.PartsCount))
	if parts == 0 {
		parts = 1 // S3 omits the count for an object uploaded in one piece
	}
	return aws.ToInt64(out.ContentLength), parts, nil
}

// Open streams the object's bytes.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	full := s.prefix + key
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &full})
	if err != nil {
		return nil, wrap("get", full, err)
	}
	return out.Body, nil
}

// List pages through ListObjectsV2 in key order. Keys are url-encoded on the
// wire (EncodingType=url) so names with control characters survive XML.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(objstore.ObjectInfo) error) error {
	in := &s3.ListObjectsV2Input{
		Bucket:       &s.bucket,
		Prefix:       aws.String(s.prefix + prefix),
		EncodingType: types.EncodingTypeUrl,
	}
	if startAfter != "" {
		in.StartAfter = aws.String(s.prefix + startAfter)
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return wrap("list", s.prefix+prefix, err)
		}
		for _, o := range page.Contents {
			key, err := decodeListKey(aws.ToString(o.Key), page.EncodingType)
			if err != nil {
				return fmt.Errorf("list %s: %w", s.prefix+prefix, err)
			}
			info := objstore.ObjectInfo{
				Key:  strings.TrimPrefix(key, s.prefix),
				Size: aws.ToInt64(o.Size),
				ETag: unquote(aws.ToString(o.ETag)),
			}
			if o.LastModified != nil {
				info.Modified = *o.LastModified
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes one object.
func (s *Store) Delete(ctx context.Context, key string) error {
	full := s.prefix + key
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &full})
	// An absent key is done; an absent bucket (fatal) is not.
	if werr := wrap("delete", full, err); werr != nil && (!errors.Is(werr, objstore.ErrNotExist) || errors.Is(werr, objstore.ErrFatal)) {
		return werr
	}
	return nil
}

func decodeListKey(k string, enc types.EncodingType) (string, error) {
	if enc != types.EncodingTypeUrl {
		return k, nil
	}
	return urlUnescape(k)
}

func unquote(s string) string { return strings.Trim(s, `"`) }
