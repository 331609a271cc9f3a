package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kwick/kwickmig/internal/filestore"
)

// A verify manifest lets verify db run where no network path joins the two
// databases (the source in the old data center, the target in a private
// subnet): `verify db --source URL --out LOC` reads the source in one
// snapshot and writes what the direct verify would read from it, and
// `verify db --target URL --in LOC` compares the target with that inside
// the VPC. It holds:
//
//   - verify-manifest.json: the header (format, kwickmig version, source
//     identity without secrets, snapshot time), the catalog verify db
//     compares (tables, columns, keys, indexes, constraints, materialized
//     views), a schema fingerprint, privileges, sequences' next values, and
//     per table the segment boundaries (the direct verify's segmentation)
//     with each segment's row count and checksum; it ends with a line
//     "sha256 HEX" over everything before it, so a truncated or damaged
//     manifest is refused;
//   - verify-rows/NNNNN.zst: per table, every row's key and row hash (for
//     tables without a key up to maxKeylessDiff rows, the row hashes with
//     their counts), zstd-compressed, each listed in the manifest with its
//     size and SHA-256. With them the compare names every missing, extra
//     and changed row by key with no second exchange; about 12-20 bytes
//     per row compressed (tens of MB for millions of rows).
//
// The hashes are the direct verify's (rowHash, sessionParams, bucketSums'
// width_bucket over the same boundaries), so a segment's sums on the target
// equal the manifest's exactly when its rows do. A changed row is named by
// key; which of its columns changed is not (the manifest holds no values:
// they may be personal data).

const (
	manifestFormat  = "kwickmig verify manifest"
	manifestVersion = 1
	// ManifestName is the manifest's name at its location; it is written
	// last, so a location without it holds no complete manifest.
	ManifestName   = "verify-manifest.json"
	manifestRowDir = "verify-rows/"
)

// Manifest is the content of verify-manifest.json.
type Manifest struct {
	Format   string         `json:"format"`
	Version  int            `json:"version"`
	Kwickmig string         `json:"kwickmig_version"`
	Created  time.Time      `json:"created"`
	Source   ManifestSource `json:"source"`
	// SnapshotTime is the start of the snapshot transaction (now()), and
	// Snapshot its pg_current_snapshot(): the state the manifest describes.
	SnapshotTime time.Time `json:"snapshot_time"`
	Snapshot     string    `json:"snapshot"`
	TableFilter  []string  `json:"table_filter,omitempty"`
	SegmentRows  int64     `json:"segment_rows"`
	// SchemaFingerprint is the SHA-256 of the catalog verify db compares
	// (tables and materialized views, as schemaFingerprint renders them).
	SchemaFingerprint string             `json:"schema_fingerprint"`
	Tables            []*ManifestTable   `json:"tables"`
	Matviews          []*ManifestTable   `json:"materialized_views,omitempty"`
	Sequences         []ManifestSequence `json:"sequences"`
	Privileges        ManifestPrivileges `json:"privileges"`
	Totals            ManifestTotals     `json:"totals"`
}

// ManifestSource identifies the source database, without secrets.
type ManifestSource struct {
	URL           string `json:"url"` // redacted, or the secret reference
	Host          string `json:"host"`
	Port          uint16 `json:"port"`
	Database      string `json:"database"`
	SystemID      string `json:"system_identifier,omitempty"`
	ServerStarted string `json:"server_started"`
	DatabaseOID   uint32 `json:"database_oid"`
	ServerVersion string `json:"server_version"`
}

// ManifestColumn is one compared column.
type ManifestColumn struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	NotNull bool   `json:"not_null,omitempty"`
}

// ManifestTable is one table (or populated materialized view) of the source.
type ManifestTable struct {
	Schema    string           `json:"schema"`
	Name      string           `json:"name"`
	Columns   []ManifestColumn `json:"columns"`
	Key       []string         `json:"key,omitempty"`
	KeyKind   string           `json:"key_kind,omitempty"`
	Indexes   []string         `json:"indexes,omitempty"`
	Checks    []string         `json:"constraints,omitempty"`
	Populated *bool            `json:"populated,omitempty"` // materialized views
	Rows      int64            `json:"rows"`
	// Boundaries are the segment boundaries (first key column as text);
	// segment i is [Boundaries[i-1], Boundaries[i]); Segments has one more
	// entry than Boundaries. A table without a key has one segment.
	Boundaries []string          `json:"boundaries,omitempty"`
	Segments   []ManifestSegment `json:"segments"`
	// RowsFile lists every row's key and hash (keyed tables) or the row
	// hashes and their counts (others, when small enough); nil when
	// absent (then rows only on one side are not counted).
	RowsFile *ManifestFile `json:"rows_file,omitempty"`
}

func (t *ManifestTable) id() string { return t.Schema + "." + t.Name }

// ManifestSegment is one key range's row count and checksum.
type ManifestSegment struct {
	Rows int64  `json:"rows"`
	Hash string `json:"hash"`
}

// ManifestFile is one file of the manifest, checked before use.
type ManifestFile = filestore.Entry

// ManifestSequence is one sequence and the value nextval() would return.
type ManifestSequence struct {
	Schema    string  `json:"schema"`
	Name      string  `json:"name"`
	Increment int64   `json:"increment"`
	Column    *string `json:"column,omitempty"`     // schema.table.column it feeds
	ColumnRef *string `json:"column_ref,omitempty"` // quoted table|column
	Next      int64   `json:"next"`
}

// ManifestPrivileges are the source's privileges as verify db compares them.
type ManifestPrivileges struct {
	Grants  []ManifestGrant  `json:"grants"`
	Objects []ManifestObject `json:"objects"`
}

// ManifestGrant is one grantee's privileges on one object.
type ManifestGrant struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Grantee    string `json:"grantee"`
	Privileges string `json:"privileges"`
}

// ManifestObject is one object privileges are read for.
type ManifestObject struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Table string `json:"table,omitempty"`
}

// ManifestTotals sum the manifest up.
type ManifestTotals struct {
	Tables        int   `json:"tables"`
	Rows          int64 `json:"rows"`
	Segments      int   `json:"segments"`
	RowsFileBytes int64 `json:"rows_file_bytes"`
}

// encodeManifest renders the manifest followed by its checksum line.
func encodeManifest(m *Manifest) ([]byte, error) {
	body, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	return append(body, "sha256 "+hex.EncodeToString(sum[:])+"\n"...), nil
}

// decodeManifest checks the trailing checksum line and parses the manifest.
func decodeManifest(data []byte, where string) (*Manifest, error) {
	damaged := func(why string) error {
		return fmt.Errorf("manifest %s is damaged or incomplete (%s): copy it again from where verify db --out wrote it", where, why)
	}
	trimmed, ok := bytes.CutSuffix(data, []byte("\n"))
	i := bytes.LastIndexByte(trimmed, '\n')
	if !ok || i < 0 {
		return nil, damaged("no checksum line")
	}
	body, last := data[:i+1], string(trimmed[i+1:])
	want, ok := strings.CutPrefix(last, "sha256 ")
	if !ok || len(want) != 64 {
		return nil, damaged("no checksum line")
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != want {
		return nil, damaged("checksum mismatch")
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, damaged(oneLine(err))
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("%s is not a verify manifest (format %q)", where, m.Format)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("manifest %s has format version %d; this kwickmig reads version %d (use the kwickmig release that wrote it, %s)",
			where, m.Version, manifestVersion, m.Kwickmig)
	}
	return &m, nil
}

// schemaFingerprint is the SHA-256 of the compared catalog (tables and
// materialized views without oids, in catalog order).
func schemaFingerprint(tables, matviews []*ManifestTable) string {
	type entry struct {
		Kind, Schema, Name string
		Columns            []ManifestColumn
		Key                []string
		Indexes, Checks    []string
	}
	var all []entry
	for _, t := range tables {
		all = append(all, entry{"table", t.Schema, t.Name, t.Columns, t.Key, t.Indexes, t.Checks})
	}
	for _, t := range matviews {
		all = append(all, entry{"materialized view", t.Schema, t.Name, t.Columns, nil, nil, nil})
	}
	data, _ := json.Marshal(all)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// manifestTable renders a catalog table.
func manifestTable(t *table) *ManifestTable {
	mt := &ManifestTable{Schema: t.Schema, Name: t.Name, Key: t.Key, KeyKind: t.KeyKind, Indexes: t.Indexes, Checks: t.Checks}
	for _, c := range t.Columns {
		//lint:ignore S1016 field by field: the manifest's file format must not follow the catalog struct silently
		mt.Columns = append(mt.Columns, ManifestColumn{Name: c.Name, Type: c.Type, NotNull: c.NotNull})
	}
	return mt
}

// catalogTable is the manifest table as the catalog code knows tables.
func (mt *ManifestTable) catalogTable() *table {
	t := &table{Schema: mt.Schema, Name: mt.Name, Key: mt.Key, KeyKind: mt.KeyKind, Indexes: mt.Indexes, Checks: mt.Checks}
	for _, c := range mt.Columns {
		//lint:ignore S1016 field by field: the manifest's file format must not follow the catalog struct silently
		t.Columns = append(t.Columns, column{Name: c.Name, Type: c.Type, NotNull: c.NotNull})
	}
	return t
}
