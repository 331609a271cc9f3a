package verify

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// contentJob is one file whose size matched its object; its bytes are
// compared by checksum (HEAD + local hash) or, when deep, byte for byte.
type contentJob struct {
	rel, key string
	etag     string // from the listing
	mod      int64  // the listing's LastModified, Unix ns (0: unknown)
	entry    source.Entry
	rec      *checkpoint.FileRecord
	deep     bool
}

// sampled reports whether a file falls in a pct% random sample.
func sampled(pct float64) bool {
	return pct >= 100 || rand.Float64()*100 < pct
}

// copyBufs are the read buffers of the hashing workers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// crc64NVME is the CRC-64/NVME table (S3's x-amz-checksum-crc64nvme):
// Go's crc64 is the reflected, all-ones-initialised form it needs.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

var errChangedWhileReading = errors.New("changed while being read")

func (v *filesVerifier) checkContent(ctx context.Context, j contentJob) {
	if ctx.Err() != nil {
		return
	}
	v.content.Add(1)
	var d *FileDiff
	var err error
	method := MethodBytes
	if j.deep {
		d, err = v.compareBytes(ctx, j)
	} else {
		d, method, err = v.compareChecksum(ctx, j)
	}
	switch {
	case errors.Is(err, errChangedWhileReading):
		v.res.add(FileDiff{Kind: KindChanged, Path: j.rel, Key: j.key, Detail: "the file changed while it was being verified"})
	case errors.Is(err, objstore.ErrNotExist):
		v.res.add(v.classifyRec(FileDiff{Kind: KindMissing, Path: j.rel, Key: j.key, Detail: "deleted from the bucket during the verification"}, j))
	case err != nil:
		if ctx.Err() == nil {
			v.res.add(FileDiff{Kind: KindError, Path: j.rel, Key: j.key, Detail: err.Error()})
		}
	case d != nil:
		v.res.comparedBy(method)
		v.res.add(v.classifyRec(*d, j))
	default:
		v.res.comparedBy(method)
		v.res.matched.Add(1)
		if v.proofs != nil {
			level := checkpoint.LevelChecksum
			if method == MethodBytes {
				level = checkpoint.LevelDeep
			}
			v.proofs.stamp(j, level)
		}
	}
}

func (v *filesVerifier) classifyRec(d FileDiff, j contentJob) FileDiff {
	var rec *checkpoint.DirEntry
	if j.rec != nil {
		rec = &checkpoint.DirEntry{Rec: *j.rec}
	}
	return v.classify(d, &j.entry, rec)
}

// compareChecksum compares the file with the object without downloading
// it, and says how (a Method*). The file is read once into MD5 and CRC32C.
// When the listing's ETag is a plain MD5 (single-part uploads without
// SSE-KMS) and equals the file's, the object matches with no request at
// all (rclone check does the same). Otherwise a HEAD fetches the stored
// checksum, which decides: a full-object CRC32C (files sync's, for single
// and multipart uploads), CRC64NVME or SHA-256 is compared with the file's; a
// composite CRC32C (a checksum of the parts' CRC32Cs, from older kwickmig
// versions and other tools) is compared with the same composite computed
// from the file cut at the object's part sizes (composite.go). An ETag
// alone never reports a mismatch, since some encryption modes make it
// something other than the MD5. An object without a stored checksum is
// compared byte for byte, and so is one whose stored checksum disagrees:
// a mismatch is only reported once the bytes differ, so a server that
// computes its checksums some other way never causes a false mismatch.
func (v *filesVerifier) compareChecksum(ctx context.Context, j contentJob) (*FileDiff, string, error) {
	md, crc := md5.New(), crc32.New(objstore.Castagnoli)
	if err := v.hashFile(j, io.MultiWriter(md, crc)); err != nil {
		return nil, MethodCRC32C, err
	}
	if isMD5(j.etag) && hex.EncodeToString(md.Sum(nil)) == strings.ToLower(j.etag) {
		return nil, MethodETagMD5, nil
	}
	info, err := v.st.Head(ctx, j.key)
	if err != nil {
		return nil, MethodCRC32C, err
	}
	if info.Size != j.entry.Size {
		return &FileDiff{Kind: KindSize, Path: j.rel, Key: j.key, SourceSize: j.entry.Size, ObjectSize: info.Size}, MethodCRC32C, nil
	}
	algo, want, _ := strings.Cut(info.Checksum, ":")
	method, got := MethodCRC32C, ""
	switch {
	case algo == "crc32c" && isComposite(info, want):
		return v.compareComposite(ctx, j, info, want)
	case algo == "crc32c":
		got = base64.StdEncoding.EncodeToString(crc.Sum(nil))
		if got != want && info.ChecksumType == "" && partsInETag(info.ETag) > 1 {
			// A multipart object whose store states no checksum type (moto
			// writes composites without their "-N"): try the composite.
			if d, m, err := v.compareComposite(ctx, j, info, want); err != nil || d == nil {
				return d, m, err
			}
		}
	case algo == "crc64nvme":
		// S3's default for objects other tools upload (AWS CLI v2, SDKs
		// with default integrity protection); always a full-object checksum.
		method = MethodCRC64NVME
		h := crc64.New(crc64NVME)
		if err := v.hashFile(j, h); err != nil {
			return nil, method, err
		}
		got = base64.StdEncoding.EncodeToString(h.Sum(nil))
	case algo == "sha256" && !strings.Contains(want, "-"):
		method = MethodSHA256
		h := sha256.New()
		if err := v.hashFile(j, h); err != nil {
			return nil, method, err
		}
		got = base64.StdEncoding.EncodeToString(h.Sum(nil))
	default:
		v.res.noChecksum.Add(1)
		d, err := v.compareBytes(ctx, j)
		return d, MethodBytes, err
	}
	if got != want {
		return v.confirmMismatch(ctx, j, fmt.Sprintf("%s of the file %s, stored with the object %s", algo, got, want))
	}
	return nil, method, nil
}

// confirmMismatch settles a stored checksum that disagrees with the file by
// comparing the bytes: the difference is reported as a checksum mismatch
// with the offset of the first differing byte; bytes that match are counted as a wrong stored
// checksum, not as a mismatch.
func (v *filesVerifier) confirmMismatch(ctx context.Context, j contentJob, detail string) (*FileDiff, string, error) {
	d, err := v.compareBytes(ctx, j)
	if err != nil {
		return nil, MethodBytes, err
	}
	if d == nil {
		v.res.storedSumWrong.Add(1)
		return nil, MethodBytes, nil
	}
	if d.Kind == KindContent {
		d.Kind = KindChecksum
		d.Detail = detail + "; " + d.Detail
	}
	return d, MethodBytes, nil
}

// isMD5 reports whether an ETag looks like a plain MD5 (not multipart).
func isMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

// hashFile reads the file into h and checks it did not change meanwhile.
func (v *filesVerifier) hashFile(j contentJob, h io.Writer) error {
	f, err := v.openSource(j)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(h, f, *buf)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	v.res.bytesRead.Add(n)
	return sameAsWalk(f, &j.entry, n)
}

func (v *filesVerifier) openSource(j contentJob) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK
	if !v.o.FollowSymlinks {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(filepath.Join(v.o.Src, j.rel), flags, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errChangedWhileReading
	}
	return f, err
}

// sameAsWalk checks the open file still has the size, mtime and ctime the
// walk saw, and that n bytes were read.
func sameAsWalk(f *os.File, e *source.Entry, n int64) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if n != e.Size || st.Size != e.Size || st.Mtim.Nano() != e.MtimeNs || st.Ctim.Nano() != e.CtimeNs {
		return errChangedWhileReading
	}
	return nil
}

// compareBytes downloads the object and compares it with the file.
func (v *filesVerifier) compareBytes(ctx context.Context, j contentJob) (*FileDiff, error) {
	obj, err := v.st.Open(ctx, j.key)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	f, err := v.openSource(j)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		na, errA := io.ReadFull(f, bufA)
		nb, errB := io.ReadFull(obj, bufB[:max(na, 1)])
		v.res.bytesRead.Add(int64(na))
		v.res.bytesDownloaded.Add(int64(nb))
		if errB != nil && !errors.Is(errB, io.EOF) && !errors.Is(errB, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("download: %w", errB)
		}
		if errA != nil && !errors.Is(errA, io.EOF) && !errors.Is(errA, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read: %w", errA)
		}
		if !bytes.Equal(bufA[:na], bufB[:nb]) {
			if err := sameAsWalk(f, &j.entry, j.entry.Size); err != nil {
				return nil, err
			}
			at := off + int64(firstDiff(bufA[:na], bufB[:nb]))
			return &FileDiff{Kind: KindContent, Path: j.rel, Key: j.key, Detail: fmt.Sprintf("bytes differ at offset %d", at)}, nil
		}
		off += int64(na)
		if na < len(bufA) { // end of the file
			break
		}
	}
	// The object may be longer than the file.
	if n, _ := obj.Read(bufB[:1]); n > 0 {
		return &FileDiff{Kind: KindContent, Path: j.rel, Key: j.key, Detail: fmt.Sprintf("the object has more bytes than the file (%d)", off)}, nil
	}
	if err := sameAsWalk(f, &j.entry, off); err != nil {
		return nil, err
	}
	return nil, nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
