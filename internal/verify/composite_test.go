package verify

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
)

// TestVerifyMultipartChecksums stores four large files on versitygw: one
// by kwickmig (FULL_OBJECT CRC32C), one through the transfer manager as
// older kwickmig versions did (composite CRC32C "…-3", parts of one size),
// one by hand with parts of different sizes (composite) and one with a
// full-object CRC64NVME (other tools' default). verify files --checksum
// must match all four without a download, say which way each was
// compared, and, once one byte of each file is changed on disk, report
// exactly those four files as checksum mismatches at the changed offset.
func TestVerifyMultipartChecksums(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	ctx := context.Background()
	src := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"full.bin": data(13<<20 + 7),
		"comp.bin": data(13<<20 + 5),
		"odd.bin":  data(13<<20 + 3),
		"nvme.bin": data(11<<20 + 1),
		"a.json":   []byte(`{"small":true}`),
	}
	for rel, b := range files {
		if err := os.WriteFile(filepath.Join(src, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s3store.New(ctx, s3store.Options{URL: "s3://" + e.Bucket, EndpointURL: e.Endpoint, MultipartThreshold: 5 << 20, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"full.bin", "a.json"} {
		if _, err := st.Put(ctx, rel, bytes.NewReader(files[rel]), int64(len(files[rel])), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The transfer manager, as kwickmig used it before: composite CRC32C.
	up := tm.New(e.Client, func(o *tm.Options) {
		o.MultipartUploadThreshold, o.PartSizeBytes, o.ChecksumAlgorithm = 5<<20, 5<<20, "CRC32C"
	})
	if _, err := up.UploadObject(ctx, &tm.UploadObjectInput{Bucket: &e.Bucket, Key: aws.String("comp.bin"), Body: bytes.NewReader(files["comp.bin"])}); err != nil {
		t.Fatal(err)
	}
	putParts(t, e, "odd.bin", files["odd.bin"], []int{6 << 20, 5 << 20}, types.ChecksumAlgorithmCrc32c)
	// Another tool's default: a full-object CRC64NVME.
	putParts(t, e, "nvme.bin", files["nvme.bin"], []int{5 << 20}, types.ChecksumAlgorithmCrc64nvme)

	for rel, want := range map[string]string{"full.bin": objstore.ChecksumFullObject, "comp.bin": objstore.ChecksumComposite,
		"odd.bin": objstore.ChecksumComposite, "nvme.bin": objstore.ChecksumFullObject} {
		info, err := st.Head(ctx, rel)
		if err != nil {
			t.Fatal(err)
		}
		if info.ChecksumType != want || (want == objstore.ChecksumComposite) != strings.HasSuffix(info.Checksum, "-3") {
			t.Fatalf("%s stored with %s %s, want %s", rel, info.ChecksumType, info.Checksum, want)
		}
	}

	run := func() *FilesResult {
		t.Helper()
		res, err := VerifyFiles(ctx, st, nil, FilesOptions{Src: src, Checksum: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := run()
	if !res.OK() || res.Matched != 5 || res.BytesDownloaded != 0 {
		t.Fatalf("clean tree: %+v", res)
	}
	if res.ComparedBy[MethodComposite] != 2 || res.ComparedBy[MethodCRC32C] != 1 || res.ComparedBy[MethodETagMD5] != 1 || res.ComparedBy[MethodCRC64NVME] != 1 {
		t.Fatalf("compared by %v, want 2 composite, 1 crc32c, 1 crc64nvme, 1 etag-md5", res.ComparedBy)
	}

	// One changed byte in each large file, same size.
	for _, rel := range []string{"full.bin", "comp.bin", "odd.bin", "nvme.bin"} {
		b := bytes.Clone(files[rel])
		b[7<<20+11] ^= 0x40
		if err := os.WriteFile(filepath.Join(src, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res = run()
	if res.Mismatches != 4 || res.Matched != 1 || res.Errors != 0 {
		t.Fatalf("damaged tree: %+v", res)
	}
	for _, d := range res.Differences {
		if d.Kind != KindChecksum || !strings.Contains(d.Detail, "offset 7340043") {
			t.Fatalf("difference %+v, want a checksum mismatch at offset 7340043", d)
		}
	}
}

// putParts uploads body by hand in parts of the given sizes (the rest in a
// last part) with the algorithm's default checksum type (CRC32C:
// composite, CRC64NVME: full object), as other tools may.
func putParts(t *testing.T, e *kmtest.S3Env, key string, body []byte, sizes []int, algo types.ChecksumAlgorithm) {
	t.Helper()
	ctx := context.Background()
	mu, err := e.Client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &e.Bucket, Key: &key, ChecksumAlgorithm: algo})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, off := 0, 0; off < len(body); i++ {
		n := len(body) - off
		if i < len(sizes) {
			n = sizes[i]
		}
		out, err := e.Client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &e.Bucket, Key: &key, UploadId: mu.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body[off : off+n]), ChecksumAlgorithm: algo})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)),
			ChecksumCRC32C: out.ChecksumCRC32C, ChecksumCRC64NVME: out.ChecksumCRC64NVME})
		off += n
	}
	if _, err := e.Client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &e.Bucket, Key: &key, UploadId: mu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
}
