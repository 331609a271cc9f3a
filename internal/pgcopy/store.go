package pgcopy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
)

// FileEntry is one file of an export, as the manifest lists it.
type FileEntry struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// exportStore is where an export lives: a local directory or a bucket.
// Files are written whole (a temporary file, then published) and read back
// as local files whose checksum has been verified.
type exportStore interface {
	// write creates key with what fn writes and returns its size and SHA-256.
	write(ctx context.Context, key string, fn func(w io.Writer) error) (FileEntry, error)
	// fetch returns a local path holding key after checking its size and
	// SHA-256 against want; cleanup removes any temporary copy.
	fetch(ctx context.Context, want FileEntry) (path string, cleanup func(), err error)
	// exists reports whether key is present.
	exists(ctx context.Context, key string) (bool, error)
	// read returns a small file's bytes, unverified (the manifest).
	read(ctx context.Context, key string) ([]byte, error)
	String() string
}

// openExportStore opens a directory (created if missing when create is
// set) or an s3://bucket/prefix location.
func openExportStore(ctx context.Context, opts *Options, create bool) (exportStore, error) {
	loc := opts.Location
	if strings.HasPrefix(loc, "s3://") {
		so := opts.S3
		so.URL = loc
		if so.Concurrency == 0 {
			so.Concurrency = opts.Jobs * 2
		}
		s, err := s3store.New(ctx, so)
		if err != nil {
			return nil, err
		}
		if err := s.Check(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		return &bucketStore{s: s, url: loc}, nil
	}
	if create {
		// Export files hold customer data: only the migrating user reads them.
		if err := os.MkdirAll(loc, 0o700); err != nil {
			return nil, fmt.Errorf("create export directory: %w", err)
		}
	} else if fi, err := os.Stat(loc); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("export directory %s: not found", loc)
	}
	return &dirStore{dir: loc}, nil
}

// hashWriter counts and hashes what passes through.
type hashWriter struct {
	w    io.Writer
	h    hashState
	size int64
}

type hashState interface {
	io.Writer
	Sum([]byte) []byte
}

func newHashWriter(w io.Writer) *hashWriter { return &hashWriter{w: w, h: sha256.New()} }

func (hw *hashWriter) Write(b []byte) (int, error) {
	n, err := hw.w.Write(b)
	hw.h.Write(b[:n])
	hw.size += int64(n)
	return n, err
}

func (hw *hashWriter) entry(key string) FileEntry {
	return FileEntry{Key: key, Size: hw.size, SHA256: hex.EncodeToString(hw.h.Sum(nil))}
}

// writeTemp writes fn's output to f, buffered, hashing it.
func writeTemp(f *os.File, key string, fn func(w io.Writer) error) (FileEntry, error) {
	bw := bufio.NewWriterSize(f, 1<<20)
	hw := newHashWriter(bw)
	if err := fn(hw); err != nil {
		return FileEntry{}, err
	}
	if err := bw.Flush(); err != nil {
		return FileEntry{}, err
	}
	return hw.entry(key), f.Sync()
}

// verifyFile hashes a local file and compares it with want.
func verifyFile(path string, want FileEntry) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("export file %s: %w", want.Key, err)
	}
	defer f.Close()
	hw := newHashWriter(io.Discard)
	if _, err := io.Copy(hw, f); err != nil {
		return fmt.Errorf("export file %s: %w", want.Key, err)
	}
	got := hw.entry(want.Key)
	if got.Size != want.Size || got.SHA256 != want.SHA256 {
		return fmt.Errorf("export file %s is damaged: %d bytes with sha256 %s, manifest says %d bytes with sha256 %s (copy the file again from the export)",
			want.Key, got.Size, got.SHA256, want.Size, want.SHA256)
	}
	return nil
}

type dirStore struct{ dir string }

func (d *dirStore) String() string { return d.dir }

func (d *dirStore) write(ctx context.Context, key string, fn func(w io.Writer) error) (FileEntry, error) {
	path := filepath.Join(d.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return FileEntry{}, err
	}
	f, err := os.OpenFile(path+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return FileEntry{}, err
	}
	e, err := writeTemp(f, key, fn)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return FileEntry{}, err
	}
	return e, os.Rename(path+".tmp", path)
}

func (d *dirStore) fetch(ctx context.Context, want FileEntry) (string, func(), error) {
	path := filepath.Join(d.dir, filepath.FromSlash(want.Key))
	if err := verifyFile(path, want); err != nil {
		return "", nil, err
	}
	return path, func() {}, nil
}

func (d *dirStore) exists(ctx context.Context, key string) (bool, error) {
	_, err := os.Stat(filepath.Join(d.dir, filepath.FromSlash(key)))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

type bucketStore struct {
	s   objstore.Store
	url string
}

func (b *bucketStore) String() string { return b.url }

func (b *bucketStore) write(ctx context.Context, key string, fn func(w io.Writer) error) (FileEntry, error) {
	f, err := os.CreateTemp("", "kwickmig-export-*")
	if err != nil {
		return FileEntry{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	e, err := writeTemp(f, key, fn)
	if err != nil {
		return FileEntry{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return FileEntry{}, err
	}
	if _, err := b.s.Put(ctx, key, f, e.Size, objstore.PutOptions{ContentType: "application/octet-stream",
		Metadata: map[string]string{"sha256": e.SHA256}}); err != nil {
		return FileEntry{}, fmt.Errorf("put %s: %w", key, err)
	}
	return e, nil
}

func (b *bucketStore) fetch(ctx context.Context, want FileEntry) (string, func(), error) {
	r, err := b.s.Open(ctx, want.Key)
	if err != nil {
		return "", nil, fmt.Errorf("export file %s: %w", want.Key, err)
	}
	defer r.Close()
	f, err := os.CreateTemp("", "kwickmig-import-*")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = verifyFile(f.Name(), want)
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

func (b *bucketStore) exists(ctx context.Context, key string) (bool, error) {
	_, err := b.s.Head(ctx, key)
	if errors.Is(err, objstore.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// readSmall fetches a small verified file (schema scripts).
func readSmall(ctx context.Context, st exportStore, e FileEntry) ([]byte, error) {
	path, cleanup, err := st.fetch(ctx, e)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	return os.ReadFile(path)
}

func (d *dirStore) read(ctx context.Context, key string) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(key)))
}

func (b *bucketStore) read(ctx context.Context, key string) ([]byte, error) {
	r, err := b.s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
