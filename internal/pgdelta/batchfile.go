package pgdelta

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kwick/kwickmig/internal/objstore"
)

// Offline layout, in a directory or under an object-store prefix:
//
//	round-000001-part-0001.jsonl.gz   the round's changes, one logRow per line, ≤ BatchRows each
//	round-000001.json                 the round's manifest, written last: tick, previous
//	                                  tick, tables, parts with SHA-256, sequences
//
// A round exists once its manifest exists; part files without one are the
// leftovers of an interrupted export and are overwritten by the next.
const batchFormat = "kwickmig-delta/1"

func manifestName(round int) string { return fmt.Sprintf("round-%06d.json", round) }
func partName(round, part int) string {
	return fmt.Sprintf("round-%06d-part-%04d.jsonl.gz", round, part)
}

// manifest describes one exported round.
type manifest struct {
	Format    string          `json:"format"`
	Round     int             `json:"round"`
	Tick      string          `json:"tick"`
	PrevTick  string          `json:"prev_tick"`
	Source    string          `json:"source"` // host:port/database, no credentials
	Created   string          `json:"created"`
	Rows      int64           `json:"rows"`
	Tables    []manifestTable `json:"tables"`
	Parts     []manifestPart  `json:"parts"`
	Sequences []seqValue      `json:"sequences"`
	// Partitions of the captured tables at the round's tick (partitions.go).
	Partitions       []partitionDef `json:"partitions,omitempty"`
	PartitionsListed bool           `json:"partitions_listed,omitempty"`
	// Takeover: per table id, the last log row of a partition take-over
	// (takeover.go), as known at this export.
	Takeover map[int32]int64 `json:"takeover,omitempty"`
}

type manifestTable struct {
	TID     int32    `json:"tid"`
	Schema  string   `json:"schema"`
	Name    string   `json:"name"`
	Key     []string `json:"key"`
	Logged  []string `json:"logged"`  // columns of a change's data, in order
	Columns []string `json:"columns"` // all columns on the source

	// DDL creates a table added after install (capture add) on the target.
	DDL string `json:"ddl,omitempty"`
}

type manifestPart struct {
	Part   int    `json:"part"`
	File   string `json:"file"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// BatchStore holds offline delta files: a directory (DirStore) or an
// object-store prefix (ObjectBatchStore).
type BatchStore interface {
	// Put stores data under name atomically: readers see all of it or none.
	Put(ctx context.Context, name string, data []byte) error
	// Get returns name's bytes; the error matches fs.ErrNotExist if absent.
	Get(ctx context.Context, name string) ([]byte, error)
	// String names the location for messages.
	String() string
}

// DirStore is a BatchStore in a local directory, created on first Put.
type DirStore string

var _ BatchStore = DirStore("")

// Put writes a temporary file, syncs it and renames it into place.
func (d DirStore) Put(_ context.Context, name string, data []byte) error {
	// Batch files hold customer data: directory 0700, files 0600 (CreateTemp).
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(string(d), "."+name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(string(d), name)); err != nil {
		return err
	}
	if dir, err := os.Open(string(d)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}

// Get reads a file.
func (d DirStore) Get(_ context.Context, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), name))
}

func (d DirStore) String() string { return string(d) }

// ObjectBatchStore adapts an objstore.Store (e.g. S3) to a BatchStore.
type ObjectBatchStore struct {
	Store objstore.Store
	Name  string // for messages, e.g. the s3:// URL
}

var _ BatchStore = ObjectBatchStore{}

// Put uploads data; the object exists with these bytes when Put returns nil.
func (o ObjectBatchStore) Put(ctx context.Context, name string, data []byte) error {
	_, err := o.Store.Put(ctx, name, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	return err
}

// Get downloads an object.
func (o ObjectBatchStore) Get(ctx context.Context, name string) ([]byte, error) {
	rc, err := o.Store.Open(ctx, name)
	if err != nil {
		if errors.Is(err, objstore.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (o ObjectBatchStore) String() string { return o.Name }

// encodePart gzips rows as JSON lines.
func encodePart(rows []logRow) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(zw, 64<<10)
	enc := json.NewEncoder(bw)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return nil, err
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodePart checks a part file against its manifest entry and decodes it.
func decodePart(p manifestPart, data []byte) ([]logRow, error) {
	if int64(len(data)) != p.Bytes {
		return nil, fmt.Errorf("%s: %d bytes, manifest says %d (incomplete or altered file)", p.File, len(data), p.Bytes)
	}
	if sum := sha256Hex(data); sum != p.SHA256 {
		return nil, fmt.Errorf("%s: SHA-256 %s, manifest says %s (corrupted or altered file)", p.File, sum, p.SHA256)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.File, err)
	}
	dec := json.NewDecoder(zr)
	var rows []logRow
	for {
		var r logRow
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.File, err)
		}
		rows = append(rows, r)
	}
	if int64(len(rows)) != p.Rows {
		return nil, fmt.Errorf("%s: %d changes, manifest says %d", p.File, len(rows), p.Rows)
	}
	return rows, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readManifest loads round k's manifest; ok is false if it does not exist.
func readManifest(ctx context.Context, st BatchStore, round int) (manifest, bool, error) {
	var m manifest
	data, err := st.Get(ctx, manifestName(round))
	if errors.Is(err, fs.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("%s: read %s: %w", st, manifestName(round), err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, false, fmt.Errorf("%s: %s: %w", st, manifestName(round), err)
	}
	if m.Format != batchFormat || m.Round != round {
		return m, false, fmt.Errorf("%s: %s is not a kwickmig delta manifest for round %d (format %q, round %d)",
			st, manifestName(round), round, m.Format, m.Round)
	}
	return m, true, nil
}
