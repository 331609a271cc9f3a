package verify

import (
	"context"
	"fmt"
	"io"
	"math/big"
	"sort"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/filestore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// ManifestWriteOptions configure WriteManifest (verify db --out).
type ManifestWriteOptions struct {
	Source      string          // connection string
	Location    string          // directory or s3://bucket/prefix
	S3          s3store.Options // client settings for s3:// (URL is set from Location)
	Tables      []string        // only these (schema.table); default all
	Jobs        int             // tables read in parallel; default 4
	SegmentRows int64           // rows per segment; default 100,000
	AllowEmpty  bool
	Kwickmig    string // the writing release, for the header
	Progress    func(done, total int)
}

// ManifestWriteResult is verify db --out's report.
type ManifestWriteResult struct {
	Mode              string                `json:"mode"` // "manifest write"
	Source            string                `json:"source"`
	Location          string                `json:"location"`
	SnapshotTime      time.Time             `json:"snapshot_time"`
	SchemaFingerprint string                `json:"schema_fingerprint"`
	Tables            []ManifestTableResult `json:"tables"`
	TablesWritten     int                   `json:"tables_written"`
	Rows              int64                 `json:"rows_source"`
	Segments          int                   `json:"segments"`
	Sequences         int                   `json:"sequences"`
	Privileges        int                   `json:"privileges"`
	RowsFileBytes     int64                 `json:"rows_file_bytes"`
	DurationSeconds   float64               `json:"duration_seconds"`
}

// ManifestTableResult is one table of a written manifest.
type ManifestTableResult struct {
	Table         string   `json:"table"`
	Key           []string `json:"key,omitempty"`
	KeyKind       string   `json:"key_kind,omitempty"`
	Rows          int64    `json:"rows"`
	Segments      int      `json:"segments"`
	RowsFileBytes int64    `json:"rows_file_bytes"`
}

// ModeManifestWrite and ModeManifestCompare name the two manifest runs of
// verify db in their run records (summary "mode"); only a compare is a
// verification of the target.
const (
	ModeManifestWrite   = "manifest write"
	ModeManifestCompare = "manifest compare"
)

// WriteManifest reads the source in one snapshot and writes the manifest
// (see manifest.go) to o.Location. It refuses a location that already
// holds a complete manifest.
func WriteManifest(ctx context.Context, o ManifestWriteOptions) (*ManifestWriteResult, error) {
	fill := DBOptions{Jobs: o.Jobs, SegmentRows: o.SegmentRows}
	fill.fill()
	o.Jobs, o.SegmentRows = fill.Jobs, fill.SegmentRows
	start := time.Now()
	res := &ManifestWriteResult{Mode: ModeManifestWrite, Source: pgutil.Redact(o.Source), Location: o.Location}
	st, err := openManifestStore(ctx, o.Location, o.S3, true)
	if err != nil {
		return nil, err
	}
	if ok, err := st.Exists(ctx, ManifestName); err != nil {
		return nil, fmt.Errorf("%s: %w", st, err)
	} else if ok {
		return nil, fmt.Errorf("%s already holds a verify manifest (%s): write to an empty location", st, ManifestName)
	}
	src, err := openSide(ctx, pgutil.Source, o.Source)
	if err != nil {
		return nil, err
	}
	defer src.close()
	m, tables, err := manifestHeader(ctx, src, o)
	if err != nil {
		return nil, err
	}
	res.SnapshotTime = m.SnapshotTime
	if err := writeManifestRows(ctx, src, st, m, tables, o); err != nil {
		return nil, err
	}
	m.SchemaFingerprint = schemaFingerprint(m.Tables, m.Matviews)
	for _, mt := range append(append([]*ManifestTable{}, m.Tables...), m.Matviews...) {
		if mt.Populated != nil && !*mt.Populated {
			continue
		}
		m.Totals.Tables++
		m.Totals.Rows += mt.Rows
		m.Totals.Segments += len(mt.Segments)
		tr := ManifestTableResult{Table: mt.id(), Key: mt.Key, KeyKind: mt.KeyKind, Rows: mt.Rows, Segments: len(mt.Segments)}
		if mt.RowsFile != nil {
			m.Totals.RowsFileBytes += mt.RowsFile.Size
			tr.RowsFileBytes = mt.RowsFile.Size
		}
		res.Tables = append(res.Tables, tr)
	}
	data, err := encodeManifest(m)
	if err != nil {
		return nil, err
	}
	if _, err := st.Write(ctx, ManifestName, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return nil, fmt.Errorf("write %s to %s: %w", ManifestName, st, err)
	}
	res.SchemaFingerprint = m.SchemaFingerprint
	res.TablesWritten, res.Rows, res.Segments = m.Totals.Tables, m.Totals.Rows, m.Totals.Segments
	res.Sequences, res.Privileges, res.RowsFileBytes = len(m.Sequences), len(m.Privileges.Grants), m.Totals.RowsFileBytes+int64(len(data))
	res.DurationSeconds = time.Since(start).Seconds()
	return res, nil
}

// manifestHeader reads, in the source's snapshot, everything but the rows:
// identity, catalog, materialized views, privileges and sequences. It
// returns the tables whose rows are to be read (tables, then populated
// materialized views), each with its manifest entry.
func manifestHeader(ctx context.Context, src *side, o ManifestWriteOptions) (*Manifest, []manifestJob, error) {
	c := src.ctl
	m := &Manifest{Format: manifestFormat, Version: manifestVersion, Kwickmig: o.Kwickmig, Created: time.Now().UTC(),
		TableFilter: o.Tables, SegmentRows: o.SegmentRows}
	id, err := readIdentity(ctx, c)
	if err != nil {
		return nil, nil, fmt.Errorf("source: read database identity: %s", oneLine(err))
	}
	m.Source = ManifestSource{URL: pgutil.Redact(o.Source), Host: src.cfg.Host, Port: src.cfg.Port, Database: id.Name,
		SystemID: id.SystemID, ServerStarted: id.Started, DatabaseOID: id.DBOid}
	if err := c.QueryRow(ctx, "SELECT now(), pg_current_snapshot()::text, current_setting('server_version')").
		Scan(&m.SnapshotTime, &m.Snapshot, &m.Source.ServerVersion); err != nil {
		return nil, nil, fmt.Errorf("source: read snapshot: %s", oneLine(err))
	}
	m.SnapshotTime = m.SnapshotTime.UTC()
	all, err := readCatalog(ctx, pgutil.Source, c)
	if err != nil {
		return nil, nil, err
	}
	if len(all) == 0 && !o.AllowEmpty {
		return nil, nil, fmt.Errorf("nothing to verify: source database %q has no tables (wrong database name? --allow-empty accepts this)", id.Name)
	}
	tables, err := filterTables(all, o.Tables)
	if err != nil {
		return nil, nil, err
	}
	var jobs []manifestJob
	for _, t := range tables {
		mt := manifestTable(t)
		m.Tables = append(m.Tables, mt)
		jobs = append(jobs, manifestJob{t: t, mt: mt})
	}
	filtered := len(o.Tables) > 0
	if !filtered {
		views, populated, err := readMatviews(ctx, pgutil.Source, c)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range views {
			mt := manifestTable(v)
			pop := populated[v.id()]
			mt.Populated = &pop
			m.Matviews = append(m.Matviews, mt)
			if pop {
				jobs = append(jobs, manifestJob{t: v, mt: mt, matview: true})
			}
		}
	}
	p, err := readPrivileges(ctx, pgutil.Source, c)
	if err != nil {
		return nil, nil, err
	}
	m.Privileges = manifestPrivileges(p)
	seqs, err := readSourceSequences(ctx, c, tables)
	if err != nil {
		return nil, nil, err
	}
	m.Sequences = []ManifestSequence{}
	for _, s := range seqs {
		m.Sequences = append(m.Sequences, ManifestSequence{Schema: s.info.schema, Name: s.info.name, Increment: s.info.inc,
			Column: s.info.column, ColumnRef: s.info.colRef, Next: s.next})
	}
	return m, jobs, nil
}

func manifestPrivileges(p *privileges) ManifestPrivileges {
	out := ManifestPrivileges{Grants: []ManifestGrant{}, Objects: []ManifestObject{}}
	for k, v := range p.grants {
		out.Grants = append(out.Grants, ManifestGrant{Kind: k.kind, Name: k.name, Grantee: k.grantee, Privileges: v})
	}
	for k, tbl := range p.objects {
		out.Objects = append(out.Objects, ManifestObject{Kind: k[0], Name: k[1], Table: tbl})
	}
	sort.Slice(out.Grants, func(i, j int) bool {
		a, b := out.Grants[i], out.Grants[j]
		return a.Kind+"\x00"+a.Name+"\x00"+a.Grantee < b.Kind+"\x00"+b.Name+"\x00"+b.Grantee
	})
	sort.Slice(out.Objects, func(i, j int) bool {
		a, b := out.Objects[i], out.Objects[j]
		return a.Kind+"\x00"+a.Name < b.Kind+"\x00"+b.Name
	})
	return out
}

func (mp ManifestPrivileges) privileges() *privileges {
	p := &privileges{grants: map[privKey]string{}, objects: map[[2]string]string{}}
	for _, g := range mp.Grants {
		p.grants[privKey{g.Kind, g.Name, g.Grantee}] = g.Privileges
	}
	for _, o := range mp.Objects {
		p.objects[[2]string{o.Kind, o.Name}] = o.Table
	}
	return p
}

// manifestJob is one table whose rows go into the manifest.
type manifestJob struct {
	t       *table
	mt      *ManifestTable
	matview bool
	index   int
}

// writeManifestRows reads every table's rows, Jobs tables at a time, each
// worker on its own connection in the source's snapshot.
func writeManifestRows(ctx context.Context, src *side, st filestore.Store, m *Manifest, jobs []manifestJob, o ManifestWriteOptions) error {
	workers, closeAll, err := openWorkers(ctx, min(o.Jobs, max(len(jobs), 1)), src, nil)
	defer closeAll()
	if err != nil {
		return err
	}
	items := make([]*manifestJob, len(jobs))
	for i := range jobs {
		jobs[i].index = i + 1
		items[i] = &jobs[i]
	}
	var done atomic.Int64
	return runPool(ctx, workers, items, func(ctx context.Context, w *dbWorker, j *manifestJob) error {
		err := j.read(ctx, w.src, st, o.SegmentRows)
		if o.Progress != nil {
			o.Progress(int(done.Add(1)), len(items))
		}
		return err
	})
}

// read fills one table's segments and writes its rows file.
func (j *manifestJob) read(ctx context.Context, c *pgx.Conn, st filestore.Store, segmentRows int64) error {
	p := tablePair{src: j.t, dst: j.t, cols: j.t.Columns}
	tc := &tableCheck{pair: p, res: &TableResult{Table: j.t.id()}}
	if !j.matview {
		tc.key = p.keyColumns()
	}
	key := fmt.Sprintf("%s%05d.zst", manifestRowDir, j.index)
	if tc.key == nil {
		s, err := tc.sumOf(ctx, c, nil, nil)
		if err != nil {
			return fmt.Errorf("source: %s: %s", j.t.id(), oneLine(err))
		}
		j.mt.Rows, j.mt.Segments = s.rows, []ManifestSegment{{Rows: s.rows, Hash: s.hash}}
		if s.rows > maxKeylessDiff {
			return nil // as the direct verify: only that the sums differ would be reported
		}
		f, err := st.Write(ctx, key, func(w io.Writer) error { return tc.writeKeylessRows(ctx, c, w) })
		if err != nil {
			return fmt.Errorf("%s: rows file: %s", j.t.id(), oneLine(err))
		}
		j.mt.RowsFile = &f
		return nil
	}
	if err := tc.boundaries(ctx, c, segmentRows); err != nil {
		return err
	}
	for _, b := range tc.bnds {
		j.mt.Boundaries = append(j.mt.Boundaries, b[0])
	}
	var segs []segmentSum
	f, err := st.Write(ctx, key, func(w io.Writer) (err error) {
		segs, err = tc.writeKeyedRows(ctx, c, w)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: rows file: %s", j.t.id(), oneLine(err))
	}
	j.mt.RowsFile = &f
	for _, s := range segs {
		j.mt.Rows += s.rows
		j.mt.Segments = append(j.mt.Segments, ManifestSegment{Rows: s.rows, Hash: s.sum.String()})
	}
	return nil
}

// segmentSum adds a segment's row hashes as bucketSums does on the server
// (sum over bigint is exact numeric: big.Int prints it alike).
type segmentSum struct {
	rows int64
	sum  big.Int
}

// bucketExpr is the segment number of a row, as bucketSums computes it.
func (t *tableCheck) bucketExpr() string {
	if len(t.bnds) == 0 {
		return "0"
	}
	return "width_bucket(" + quoteIdent(t.key[0].Name) + ", $1::text[]::" + t.key[0].Type + "[])"
}

// writeKeyedRows streams every row's segment, key and hash into w (one
// scan of the table) and returns each segment's count and checksum.
func (t *tableCheck) writeKeyedRows(ctx context.Context, c *pgx.Conn, w io.Writer) ([]segmentSum, error) {
	segs := make([]segmentSum, len(t.bnds)+1)
	rw, err := newRowsWriter(w, rowsMagicKeyed)
	if err != nil {
		return nil, err
	}
	var args []any
	if len(t.bnds) > 0 {
		vals := make([]string, len(t.bnds))
		for i, b := range t.bnds {
			vals[i] = b[0]
		}
		args = append(args, vals)
	}
	sql := "SELECT " + t.bucketExpr() + ", " + t.keyTexts() + ", " + t.rowHash() + " FROM " + t.pair.src.qname()
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("source: %s", oneLine(err))
	}
	defer rows.Close()
	var b int
	var h int64
	vals := make([]string, len(t.key))
	ptrs := []any{&b}
	for i := range vals {
		ptrs = append(ptrs, &vals[i])
	}
	ptrs = append(ptrs, &h)
	var add big.Int
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("source: %s", oneLine(err))
		}
		if b < 0 || b >= len(segs) {
			return nil, fmt.Errorf("source: segment %d out of range", b)
		}
		segs[b].rows++
		segs[b].sum.Add(&segs[b].sum, add.SetInt64(h))
		if err := rw.keyed(b, vals, h); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source: %s", oneLine(err))
	}
	return segs, rw.close()
}

// keylessHashes is the query of a table's distinct row hashes and counts.
func (t *tableCheck) keylessHashes() string {
	return "SELECT " + t.rowHash() + ", count(*) FROM " + t.pair.src.qname() + " GROUP BY 1"
}

// writeKeylessRows writes a table's row hashes with their counts.
func (t *tableCheck) writeKeylessRows(ctx context.Context, c *pgx.Conn, w io.Writer) error {
	rw, err := newRowsWriter(w, rowsMagicKeyless)
	if err != nil {
		return err
	}
	var h, n int64
	rows, _ := c.Query(ctx, t.keylessHashes())
	if _, err := pgx.ForEachRow(rows, []any{&h, &n}, func() error { return rw.keyless(h, n) }); err != nil {
		rw.close()
		return fmt.Errorf("source: %s", oneLine(err))
	}
	return rw.close()
}
