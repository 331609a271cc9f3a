// Package filestore keeps whole files with their size and SHA-256 in a
// local directory or under an s3://bucket/prefix: db export's files and
// verify db's manifests. A file is written completely before anyone can
// see it (a temporary file, then renamed or uploaded), and read back as a
// local file whose size and checksum were checked against what the writer
// recorded, so a copy damaged in transit is refused, never used.
package filestore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
)

// Entry is one file as its writer recorded it (the JSON of export and
// verify manifests).
type Entry struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Store is a directory or a bucket location.
type Store interface {
	// Write creates key with what fn writes and returns its size and SHA-256.
	Write(ctx context.Context, key string, fn func(w io.Writer) error) (Entry, error)
	// Fetch returns a local path holding want.Key after checking its size
	// and SHA-256; cleanup removes a temporary copy.
	Fetch(ctx context.Context, want Entry) (path string, cleanup func(), err error)
	// Exists reports whether key is present.
	Exists(ctx context.Context, key string) (bool, error)
	// Read returns a small file's bytes, unchecked (the manifest itself,
	// which carries its own checksum).
	Read(ctx context.Context, key string) ([]byte, error)
	String() string
}

// Open opens loc, a directory (created 0700 if missing when create is set:
// the files hold customer data) or an s3://bucket/prefix location whose
// bucket is checked. what ("export", "manifest") names the files in errors.
func Open(ctx context.Context, loc, what string, s3o s3store.Options, create bool) (Store, error) {
	if strings.HasPrefix(loc, "s3://") {
		s3o.URL = loc
		s, err := s3store.New(ctx, s3o)
		if err != nil {
			return nil, err
		}
		if err := s.Check(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		return &bucket{s: s, url: loc, what: what}, nil
	}
	if create {
		if err := os.MkdirAll(loc, 0o700); err != nil {
			return nil, fmt.Errorf("%s directory %s: %w", what, loc, err)
		}
	} else if fi, err := os.Stat(loc); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s directory %s: not found", what, loc)
	}
	return &dir{dir: loc, what: what}, nil
}

// hashWriter counts and hashes what passes through.
type hashWriter struct {
	w    io.Writer
	h    hash.Hash
	size int64
}

func (hw *hashWriter) Write(b []byte) (int, error) {
	n, err := hw.w.Write(b)
	hw.h.Write(b[:n])
	hw.size += int64(n)
	return n, err
}

func (hw *hashWriter) entry(key string) Entry {
	return Entry{Key: key, Size: hw.size, SHA256: hex.EncodeToString(hw.h.Sum(nil))}
}

// writeTemp writes fn's output to f, buffered and hashed, and syncs it.
func writeTemp(f *os.File, key string, fn func(w io.Writer) error) (Entry, error) {
	bw := bufio.NewWriterSize(f, 1<<20)
	hw := &hashWriter{w: bw, h: sha256.New()}
	if err := fn(hw); err != nil {
		return Entry{}, err
	}
	if err := bw.Flush(); err != nil {
		return Entry{}, err
	}
	return hw.entry(key), f.Sync()
}

// check hashes a local file and compares it with want.
func check(path, what string, want Entry) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s file %s: %w", what, want.Key, err)
	}
	defer f.Close()
	hw := &hashWriter{w: io.Discard, h: sha256.New()}
	if _, err := io.Copy(hw, f); err != nil {
		return fmt.Errorf("%s file %s: %w", what, want.Key, err)
	}
	if got := hw.entry(want.Key); got != want {
		return fmt.Errorf("%s file %s is damaged: %d bytes with sha256 %s, the manifest says %d bytes with sha256 %s (copy it again)",
			what, want.Key, got.Size, got.SHA256, want.Size, want.SHA256)
	}
	return nil
}

type dir struct{ dir, what string }

func (d *dir) String() string { return d.dir }

func (d *dir) path(key string) string { return filepath.Join(d.dir, filepath.FromSlash(key)) }

func (d *dir) Write(ctx context.Context, key string, fn func(w io.Writer) error) (Entry, error) {
	path := d.path(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Entry{}, err
	}
	f, err := os.OpenFile(path+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return Entry{}, err
	}
	e, err := writeTemp(f, key, fn)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return Entry{}, err
	}
	return e, os.Rename(path+".tmp", path)
}

func (d *dir) Fetch(ctx context.Context, want Entry) (string, func(), error) {
	path := d.path(want.Key)
	if err := check(path, d.what, want); err != nil {
		return "", nil, err
	}
	return path, func() {}, nil
}

func (d *dir) Exists(ctx context.Context, key string) (bool, error) {
	_, err := os.Stat(d.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (d *dir) Read(ctx context.Context, key string) ([]byte, error) {
	return os.ReadFile(d.path(key))
}

type bucket struct {
	s         objstore.Store
	url, what string
}

func (b *bucket) String() string { return b.url }

func (b *bucket) Write(ctx context.Context, key string, fn func(w io.Writer) error) (Entry, error) {
	f, err := os.CreateTemp("", "kwickmig-"+b.what+"-*") // 0600
	if err != nil {
		return Entry{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	e, err := writeTemp(f, key, fn)
	if err != nil {
		return Entry{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Entry{}, err
	}
	if _, err := b.s.Put(ctx, key, f, e.Size, objstore.PutOptions{ContentType: "application/octet-stream",
		Metadata: map[string]string{"sha256": e.SHA256}}); err != nil {
		return Entry{}, fmt.Errorf("put %s: %w", key, err)
	}
	return e, nil
}

func (b *bucket) Fetch(ctx context.Context, want Entry) (string, func(), error) {
	r, err := b.s.Open(ctx, want.Key)
	if err != nil {
		return "", nil, fmt.Errorf("%s file %s: %w", b.what, want.Key, err)
	}
	defer r.Close()
	f, err := os.CreateTemp("", "kwickmig-"+b.what+"-*")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = check(f.Name(), b.what, want)
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

func (b *bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.s.Head(ctx, key)
	if errors.Is(err, objstore.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (b *bucket) Read(ctx context.Context, key string) ([]byte, error) {
	r, err := b.s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
