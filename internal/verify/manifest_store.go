package verify

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

// manifestStore is where a manifest lives: a local directory or an
// s3://bucket/prefix (through the same objstore as db export's bucket
// store). Files are written whole: to a temporary file first, then renamed
// (directory) or uploaded (bucket), so a reader never sees half a file.
type manifestStore interface {
	write(ctx context.Context, key string, fn func(w io.Writer) error) (ManifestFile, error)
	// read returns a small file's bytes (the manifest itself).
	read(ctx context.Context, key string) ([]byte, error)
	// local returns a local path holding the file after checking its size
	// and SHA-256; cleanup removes a temporary copy.
	local(ctx context.Context, want ManifestFile) (string, func(), error)
	exists(ctx context.Context, key string) (bool, error)
	String() string
}

// openManifestStore opens loc; create makes a missing directory (0700).
func openManifestStore(ctx context.Context, loc string, s3o s3store.Options, create bool) (manifestStore, error) {
	if strings.HasPrefix(loc, "s3://") {
		s3o.URL = loc
		s, err := s3store.New(ctx, s3o)
		if err != nil {
			return nil, err
		}
		if err := s.Check(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		return &manifestBucket{s: s, url: loc}, nil
	}
	if create {
		// The manifest names every key of every table: only the migrating user reads it.
		if err := os.MkdirAll(loc, 0o700); err != nil {
			return nil, fmt.Errorf("manifest directory %s: %w", loc, err)
		}
	} else if fi, err := os.Stat(loc); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("manifest directory %s: not found", loc)
	}
	return &manifestDir{dir: loc}, nil
}

// hashingWriter counts and hashes what passes through.
type hashingWriter struct {
	w io.Writer
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	size int64
}

func (hw *hashingWriter) Write(b []byte) (int, error) {
	n, err := hw.w.Write(b)
	hw.h.Write(b[:n])
	hw.size += int64(n)
	return n, err
}

func (hw *hashingWriter) file(key string) ManifestFile {
	return ManifestFile{Key: key, Size: hw.size, SHA256: hex.EncodeToString(hw.h.Sum(nil))}
}

// writeHashed writes fn's output to f, buffered, and syncs it.
func writeHashed(f *os.File, key string, fn func(w io.Writer) error) (ManifestFile, error) {
	bw := bufio.NewWriterSize(f, 1<<20)
	hw := &hashingWriter{w: bw, h: sha256.New()}
	if err := fn(hw); err != nil {
		return ManifestFile{}, err
	}
	if err := bw.Flush(); err != nil {
		return ManifestFile{}, err
	}
	return hw.file(key), f.Sync()
}

// checkFile hashes a local file and compares it with want.
func checkFile(path string, want ManifestFile) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("manifest file %s: %w", want.Key, err)
	}
	defer f.Close()
	hw := &hashingWriter{w: io.Discard, h: sha256.New()}
	if _, err := io.Copy(hw, f); err != nil {
		return fmt.Errorf("manifest file %s: %w", want.Key, err)
	}
	if got := hw.file(want.Key); got != want {
		return fmt.Errorf("manifest file %s is damaged: %d bytes with sha256 %s, the manifest says %d bytes with sha256 %s (copy it again)",
			want.Key, got.Size, got.SHA256, want.Size, want.SHA256)
	}
	return nil
}

type manifestDir struct{ dir string }

func (d *manifestDir) String() string { return d.dir }

func (d *manifestDir) path(key string) string { return filepath.Join(d.dir, filepath.FromSlash(key)) }

func (d *manifestDir) write(ctx context.Context, key string, fn func(w io.Writer) error) (ManifestFile, error) {
	path := d.path(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return ManifestFile{}, err
	}
	f, err := os.OpenFile(path+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return ManifestFile{}, err
	}
	e, err := writeHashed(f, key, fn)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return ManifestFile{}, err
	}
	return e, os.Rename(path+".tmp", path)
}

func (d *manifestDir) read(ctx context.Context, key string) ([]byte, error) {
	return os.ReadFile(d.path(key))
}

func (d *manifestDir) local(ctx context.Context, want ManifestFile) (string, func(), error) {
	path := d.path(want.Key)
	if err := checkFile(path, want); err != nil {
		return "", nil, err
	}
	return path, func() {}, nil
}

func (d *manifestDir) exists(ctx context.Context, key string) (bool, error) {
	_, err := os.Stat(d.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

type manifestBucket struct {
	s   objstore.Store
	url string
}

func (b *manifestBucket) String() string { return b.url }

func (b *manifestBucket) write(ctx context.Context, key string, fn func(w io.Writer) error) (ManifestFile, error) {
	f, err := os.CreateTemp("", "kwickmig-manifest-*")
	if err != nil {
		return ManifestFile{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	e, err := writeHashed(f, key, fn)
	if err != nil {
		return ManifestFile{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ManifestFile{}, err
	}
	if _, err := b.s.Put(ctx, key, f, e.Size, objstore.PutOptions{ContentType: "application/octet-stream",
		Metadata: map[string]string{"sha256": e.SHA256}}); err != nil {
		return ManifestFile{}, fmt.Errorf("put %s: %w", key, err)
	}
	return e, nil
}

func (b *manifestBucket) read(ctx context.Context, key string) ([]byte, error) {
	r, err := b.s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (b *manifestBucket) local(ctx context.Context, want ManifestFile) (string, func(), error) {
	r, err := b.s.Open(ctx, want.Key)
	if err != nil {
		return "", nil, fmt.Errorf("manifest file %s: %w", want.Key, err)
	}
	defer r.Close()
	f, err := os.CreateTemp("", "kwickmig-manifest-*") // 0600
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkFile(f.Name(), want)
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

func (b *manifestBucket) exists(ctx context.Context, key string) (bool, error) {
	_, err := b.s.Head(ctx, key)
	if errors.Is(err, objstore.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
