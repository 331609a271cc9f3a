package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/source"
)

// smallFile: files up to this size are read into a buffer from the memory
// budget (budget.go), hashed and sent from memory; larger ones are hashed
// in one pass and streamed from disk in a second (the store may re-read
// them on a retry, and reads multipart uploads part by part).
const smallFile = 1 << 20

// errChanged: the file changed while it was read; it is not recorded.
var errChanged = errors.New("file changed while it was being uploaded; it will be uploaded again on the next run")

func (s *Syncer) uploader(ctx context.Context, jobs <-chan job, records chan<- done) {
	for j := range jobs {
		s.c.queued.Add(-1)
		if ctx.Err() != nil {
			continue // stopped: drain without work
		}
		switch {
		case j.dirGone:
			records <- done{op: checkpoint.FileOp{Rel: j.rel, DeleteDir: true}}
		case j.deletion:
			s.limited(ctx, func() { s.attempt(ctx, j, func() error { return s.deleteOne(ctx, j, records) }) })
		default:
			s.limited(ctx, func() { s.attempt(ctx, j, func() error { return s.uploadOne(ctx, j, records) }) })
		}
	}
}

// limited runs one request-making job in a slot of the adaptive limiter
// (adaptive.go).
func (s *Syncer) limited(ctx context.Context, run func()) {
	if s.lim.acquire(ctx) != nil {
		return // stopped: drain without work
	}
	start := time.Now()
	defer s.lim.release(start)
	run()
}

// attempt runs one job through the outage gate: it waits while the
// endpoint is down, and a job that found the endpoint unreachable is
// retried once it answers again — never counted as failed. A fatal store
// error (TLS verification, 403, no bucket) stops the whole run: every other
// request would fail the same way. Any other error is this file's failure.
func (s *Syncer) attempt(ctx context.Context, j job, run func() error) {
	for {
		if err := s.gate.wait(ctx); err != nil {
			return // outage timeout or stop: not attempted, not failed
		}
		start := time.Now()
		err := run()
		switch {
		case err == nil:
			s.gate.ok()
			return
		case ctx.Err() != nil:
			return // stopped meanwhile: abandoned, not failed
		case errors.Is(err, objstore.ErrUnreachable):
			s.gate.down(ctx, start, err)
			continue
		case errors.Is(err, objstore.ErrFatal):
			s.stop(fmt.Errorf("%s: %w", j.rel, err))
			return
		}
		if j.deletion {
			err = fmt.Errorf("delete: %w", err)
		}
		s.fail(j.rel, err)
		return
	}
}

func (s *Syncer) deleteOne(ctx context.Context, j job, records chan<- done) error {
	key, err := s.objectKey(j.rel)
	if err != nil {
		return err
	}
	if err := s.store.Delete(ctx, key); err != nil {
		return err
	}
	s.c.deleted.Add(1)
	records <- done{op: checkpoint.FileOp{Rel: j.rel}}
	return nil
}

// uploadOne uploads one file, retrying locally when it changes under us.
func (s *Syncer) uploadOne(ctx context.Context, j job, records chan<- done) error {
	key, err := s.objectKey(j.rel)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		rec, uploaded, err := s.put(ctx, j, key)
		if errors.Is(err, errChanged) && attempt < 2 {
			continue
		}
		if err != nil {
			return err
		}
		if uploaded {
			s.c.uploaded.Add(1)
			s.c.bytesUploaded.Add(rec.Size)
		} else {
			s.c.unchanged.Add(1)
		}
		records <- done{op: checkpoint.FileOp{Rel: j.rel, Rec: rec}}
		return nil
	}
}

// objectKey maps rel to its key relative to the store's prefix. The length
// limit applies to the full key, prefix included.
func (s *Syncer) objectKey(rel string) (string, error) {
	key, err := source.ObjectKey(s.opts.Prefix, rel)
	if err != nil {
		return "", err
	}
	return key[len(s.opts.Prefix):], nil
}

// put reads and uploads the file. With --checksum and an old record whose
// hash matches, it only refreshes the record (uploaded=false).
func (s *Syncer) put(ctx context.Context, j job, key string) (rec *checkpoint.FileRecord, uploaded bool, err error) {
	if s.opts.BeforeUpload != nil {
		s.opts.BeforeUpload(j.rel)
	}
	path := filepath.Join(s.opts.Src, j.rel)
	flags := os.O_RDONLY | syscall.O_NONBLOCK // never hang on a FIFO swapped in since the walk
	if !s.opts.FollowSymlinks {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, errors.New("file disappeared before it could be uploaded")
		}
		return nil, false, err
	}
	defer f.Close()
	before, err := fstat(f)
	if err != nil {
		return nil, false, err
	}
	if before.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, false, errors.New("no longer a regular file")
	}
	rec = &checkpoint.FileRecord{
		Size: before.Size, MtimeNs: before.Mtim.Nano(), CtimeNs: before.Ctim.Nano(), Inode: before.Ino,
	}

	var body io.ReadSeeker
	var sum uint32
	buffered := s.budget.fits(rec.Size)
	if buffered {
		bp, err := s.budget.buffer(ctx, rec.Size)
		if err != nil {
			return nil, false, err
		}
		defer s.budget.release(bp)
		buf := (*bp)[:rec.Size]
		if err := readFull(f, buf); err != nil {
			return nil, false, err
		}
		sum = crc32.Checksum(buf, objstore.Castagnoli)
		body = bytes.NewReader(buf)
	} else {
		h := crc32.New(objstore.Castagnoli)
		if _, err := io.Copy(h, f); err != nil {
			return nil, false, err
		}
		sum = h.Sum32()
		// Exactly the stat'ed size, even if the file grows meanwhile (the
		// change is caught by the stat after the upload).
		body = io.NewSectionReader(f, 0, rec.Size)
	}
	rec.CRC32C = sum
	if s.opts.AfterRead != nil {
		s.opts.AfterRead(j.rel)
	}
	// Bytes read must match the stat taken before reading.
	if err := sameFile(f, before, rec.Size); err != nil {
		return nil, false, err
	}
	if j.old != nil && s.opts.Checksum && j.old.CRC32C == sum && j.old.Size == rec.Size {
		rec.ETag, rec.UploadedNs = j.old.ETag, j.old.UploadedNs
		return rec, false, nil
	}
	if s.opts.DryRun {
		s.listWouldUpload(j.rel)
		return rec, true, nil
	}
	res, err := s.store.Put(ctx, key, body, rec.Size, objstore.PutOptions{
		ContentType: contentType(j.rel),
		Metadata:    map[string]string{"mtime": formatMtime(rec.MtimeNs)},
		CRC32C:      objstore.EncodeCRC32C(sum),
		// A large file is read from disk while its parts upload: if it
		// changed meanwhile, the upload is aborted before it replaces the
		// object (the good copy from an earlier run stays).
		BeforeComplete: func() error {
			if s.opts.BeforeComplete != nil {
				s.opts.BeforeComplete(j.rel)
			}
			return sameFile(f, before, rec.Size)
		},
	})
	if err != nil {
		return nil, false, err
	}
	if !buffered {
		// Streamed from disk: the file must not have changed meanwhile.
		if err := sameFile(f, before, rec.Size); err != nil {
			return nil, false, err
		}
	}
	rec.ETag = res.ETag
	rec.UploadedNs = checkpoint.Now().UnixNano()
	return rec, true, nil
}

// readFull fills buf from f. A file that grew is caught by the fstat
// after the read (no extra read syscall to look for EOF).
func readFull(f *os.File, buf []byte) error {
	if _, err := io.ReadFull(f, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return errChanged
		}
		return err
	}
	return nil
}

// sameFile checks that size, mtime and ctime did not move since before.
func sameFile(f *os.File, before *syscall.Stat_t, size int64) error {
	after, err := fstat(f)
	if err != nil {
		return err
	}
	if after.Size != size || after.Mtim != before.Mtim || after.Ctim != before.Ctim {
		return errChanged
	}
	return nil
}

func fstat(f *os.File) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// contentType derives a Content-Type from the extension.
func contentType(rel string) string {
	if t := mime.TypeByExtension(filepath.Ext(rel)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// formatMtime renders Unix nanoseconds as "seconds.nanoseconds", the form
// rclone also uses for x-amz-meta-mtime.
func formatMtime(ns int64) string {
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	return strconv.FormatInt(sec, 10) + "." + fmt.Sprintf("%09d", frac)
}
