package verify

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/kwick/kwickmig/internal/objstore"
)

// How a file's content was compared with its object (FilesResult.ComparedBy).
const (
	MethodETagMD5   = "etag-md5"         // the listing's ETag is the file's MD5
	MethodCRC32C    = "crc32c"           // the stored full-object CRC32C
	MethodComposite = "crc32c-composite" // the stored CRC32C of the parts' CRC32Cs, recomputed from the file at the object's part sizes
	MethodCRC64NVME = "crc64nvme"        // the stored full-object CRC64NVME (S3's default for other tools' uploads)
	MethodSHA256    = "sha256"           // the stored SHA-256
	MethodBytes     = "bytes"            // downloaded and compared byte for byte
)

// isComposite reports whether a stored CRC32C is a checksum of the parts'
// checksums rather than of the object's bytes.
func isComposite(info objstore.ObjectInfo, sum string) bool {
	return info.ChecksumType == objstore.ChecksumComposite || partsSuffix(sum) > 0
}

// partsSuffix returns N for a checksum written "<base64>-N", else 0.
func partsSuffix(sum string) int {
	i := strings.LastIndexByte(sum, '-')
	if i < 0 {
		return 0
	}
	n, err := strconv.Atoi(sum[i+1:])
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// partsInETag returns N for a multipart ETag "<md5>-N", else 0.
func partsInETag(etag string) int { return partsSuffix(etag) }

// compareComposite compares an object that only has a composite CRC32C:
// the CRC32C of the concatenated big-endian CRC32Cs of its parts. The part
// sizes come from the object itself (HEAD ?partNumber=1 gives the first
// part's size and the part count); uploaders cut every part but the last
// at one size, so that guess is tried first, and only if it does not
// match are all the parts' sizes asked for. The file is then read cut at
// those sizes. When the store cannot tell the part sizes, the bytes are
// compared instead. A composite that still disagrees is settled by the
// bytes (confirmMismatch), like any stored checksum.
func (v *filesVerifier) compareComposite(ctx context.Context, j contentJob, info objstore.ObjectInfo, stored string) (*FileDiff, string, error) {
	want, _, _ := strings.Cut(stored, "-")
	n := partsSuffix(stored)
	if n == 0 {
		n = max(info.Parts, partsInETag(info.ETag))
	}
	hp, ok := v.st.(objstore.PartHeader)
	if !ok {
		return v.bytesInstead(ctx, j)
	}
	first, parts, err := hp.HeadPart(ctx, j.key, 1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, MethodComposite, ctx.Err()
		}
		return v.bytesInstead(ctx, j) // the store does not serve parts
	}
	if n == 0 {
		n = parts
	}
	if parts != n || first <= 0 {
		return v.bytesInstead(ctx, j)
	}
	sizes := make([]int64, n)
	for i := range sizes {
		sizes[i] = first
	}
	sizes[n-1] = j.entry.Size - int64(n-1)*first
	if sizes[n-1] <= 0 || sizes[n-1] > first {
		sizes = nil // not cut at one size: ask for every part
	}
	var got string
	if sizes != nil {
		if got, err = v.compositeOf(j, sizes); err != nil {
			return nil, MethodComposite, err
		}
		if got == want {
			return nil, MethodComposite, nil
		}
	}
	exact := make([]int64, n)
	exact[0] = first
	for i := 2; i <= n; i++ {
		if exact[i-1], _, err = hp.HeadPart(ctx, j.key, i); err != nil {
			if ctx.Err() != nil {
				return nil, MethodComposite, ctx.Err()
			}
			return v.bytesInstead(ctx, j)
		}
	}
	var total int64
	for _, s := range exact {
		total += s
	}
	if total != j.entry.Size {
		return v.bytesInstead(ctx, j)
	}
	if !slices.Equal(exact, sizes) {
		if got, err = v.compositeOf(j, exact); err != nil {
			return nil, MethodComposite, err
		}
		if got == want {
			return nil, MethodComposite, nil
		}
	}
	return v.confirmMismatch(ctx, j, fmt.Sprintf("crc32c of the CRC32Cs of the file's %d parts %s-%d, stored with the object %s", n, got, n, stored))
}

// bytesInstead compares the bytes when a composite cannot be recomputed.
func (v *filesVerifier) bytesInstead(ctx context.Context, j contentJob) (*FileDiff, string, error) {
	v.res.noChecksum.Add(1)
	d, err := v.compareBytes(ctx, j)
	return d, MethodBytes, err
}

// compositeOf reads the file cut at sizes and returns the base64 CRC32C of
// its parts' big-endian CRC32Cs (S3's composite checksum, without "-N").
func (v *filesVerifier) compositeOf(j contentJob, sizes []int64) (string, error) {
	f, err := v.openSource(j)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	var crcs []byte
	var total int64
	for _, size := range sizes {
		h := crc32.New(objstore.Castagnoli)
		n, err := io.CopyBuffer(h, io.LimitReader(f, size), *buf)
		total += n
		if err != nil {
			return "", fmt.Errorf("read: %w", err)
		}
		crcs = binary.BigEndian.AppendUint32(crcs, h.Sum32())
	}
	v.res.bytesRead.Add(total)
	if err := sameAsWalk(f, &j.entry, total); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(crcs, objstore.Castagnoli))), nil
}
