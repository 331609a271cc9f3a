package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// ManifestCompareOptions configure CompareManifest (verify db --in).
type ManifestCompareOptions struct {
	Target    string          // connection string
	Location  string          // directory or s3://bucket/prefix holding the manifest
	S3        s3store.Options // client settings for s3://
	Jobs      int             // tables compared in parallel; default 4
	MaxListed int             // differing rows listed per table; default 100
	Progress  func(done, total int)
}

// ManifestInfo is the manifest a compare used: the "manifest" section of
// verify db --in's report, next to the direct verify's fields.
type ManifestInfo struct {
	Mode                    string         `json:"mode"` // "manifest compare"
	Location                string         `json:"location"`
	WrittenBy               string         `json:"written_by"` // kwickmig version
	Created                 time.Time      `json:"created"`
	SnapshotTime            time.Time      `json:"snapshot_time"`
	Snapshot                string         `json:"snapshot"`
	Source                  ManifestSource `json:"source"`
	SchemaFingerprint       string         `json:"schema_fingerprint"`
	TargetSchemaFingerprint string         `json:"target_schema_fingerprint"`
}

// manifestBatchRows bounds the source rows held in memory at once while
// naming the rows of differing segments: more are read in further passes
// over the rows file.
var manifestBatchRows int64 = 250_000

// CompareManifest compares the target, read in one snapshot, with a
// manifest written by WriteManifest: the same checks, exit semantics and
// result as VerifyDB, without a connection to the source. A missing,
// truncated or damaged manifest (or rows file) is an error before the
// target is read.
func CompareManifest(ctx context.Context, o ManifestCompareOptions) (*DBResult, *ManifestInfo, error) {
	fill := DBOptions{Jobs: o.Jobs, MaxListed: o.MaxListed}
	fill.fill()
	o.Jobs, o.MaxListed = fill.Jobs, fill.MaxListed
	start := time.Now()
	st, err := openManifestStore(ctx, o.Location, o.S3, false)
	if err != nil {
		return nil, nil, err
	}
	data, err := st.Read(ctx, ManifestName)
	if errors.Is(err, objstore.ErrNotExist) || errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("no verify manifest at %s (%s is missing: verify db --source URL --out %s writes one)", st, ManifestName, st)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s from %s: %w", ManifestName, st, err)
	}
	m, err := decodeManifest(data, strings.TrimSuffix(st.String(), "/")+"/"+ManifestName)
	if err != nil {
		return nil, nil, err
	}
	info := &ManifestInfo{Mode: ModeManifestCompare, Location: st.String(), WrittenBy: m.Kwickmig, Created: m.Created,
		SnapshotTime: m.SnapshotTime, Snapshot: m.Snapshot, Source: m.Source, SchemaFingerprint: m.SchemaFingerprint}
	// Every rows file is checked (and fetched, from a bucket) before the
	// target is touched: a damaged manifest is refused whole.
	paths := map[*ManifestTable]string{}
	var cleanups []func()
	defer func() {
		for _, c := range cleanups {
			c()
		}
	}()
	for _, mt := range append(append([]*ManifestTable{}, m.Tables...), m.Matviews...) {
		if mt.Populated != nil && !*mt.Populated {
			continue // not compared, as by the direct verify
		}
		if err := mt.sane(); err != nil {
			return nil, nil, fmt.Errorf("manifest %s: %w", st, err)
		}
		if mt.RowsFile == nil {
			continue
		}
		p, cleanup, err := st.Fetch(ctx, *mt.RowsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", st, err)
		}
		paths[mt] = p
		cleanups = append(cleanups, cleanup)
	}
	res := &DBResult{Source: m.Source.URL, Target: pgutil.Redact(o.Target)}
	dst, err := openSide(ctx, pgutil.Target, o.Target)
	if err != nil {
		return nil, nil, err
	}
	defer dst.close()
	if err := refuseManifestSource(ctx, dst, m); err != nil {
		return nil, nil, err
	}
	filtered := len(m.TableFilter) > 0
	srcTables := make([]*table, len(m.Tables))
	byTable := map[*table]*ManifestTable{}
	for i, mt := range m.Tables {
		srcTables[i] = mt.catalogTable()
		byTable[srcTables[i]] = mt
	}
	dstTables, err := readCatalog(ctx, pgutil.Target, dst.ctl)
	if err != nil {
		return nil, nil, err
	}
	pairs, schemaDiffs := compareSchema(srcTables, dstTables, filtered)
	res.Schema = schemaDiffs
	dp, err := readPrivileges(ctx, pgutil.Target, dst.ctl)
	if err != nil {
		return nil, nil, err
	}
	res.Schema = append(res.Schema, comparePrivileges(m.Privileges.privileges(), dp, srcTables, filtered)...)
	var dviews []*table
	if !filtered {
		var dpop map[string]bool
		if dviews, dpop, err = readMatviews(ctx, pgutil.Target, dst.ctl); err != nil {
			return nil, nil, err
		}
		var sviews []*table
		spop := map[string]bool{}
		for _, mt := range m.Matviews {
			t := mt.catalogTable()
			sviews = append(sviews, t)
			spop[t.id()] = mt.Populated != nil && *mt.Populated
			byTable[t] = mt
		}
		pairs = append(pairs, pairMatviews(sviews, spop, dviews, dpop, res)...)
	}
	info.TargetSchemaFingerprint = targetFingerprint(dstTables, dviews, srcTables, filtered)

	if err := compareManifestRows(ctx, dst, pairs, byTable, paths, o, res); err != nil {
		return nil, nil, err
	}
	for _, s := range m.Sequences {
		c, err := checkTargetSequence(ctx, dst.ctl, seqInfo{schema: s.Schema, name: s.Name, inc: s.Increment,
			column: s.Column, colRef: s.ColumnRef}, s.Next)
		if err != nil {
			return nil, nil, err
		}
		res.Sequences = append(res.Sequences, c)
		if !c.OK {
			res.SequencesBehind++
		}
	}
	for _, t := range res.Tables {
		res.TablesChecked++
		res.RowsSource += t.SourceRows
		res.RowsTarget += t.TargetRows
		res.Segments += t.Segments
		if t.Differs() {
			res.TablesDiffer++
		}
		slices.SortFunc(t.Rows, func(a, b RowDiff) int { return strings.Compare(a.Kind+a.Key, b.Kind+b.Key) })
	}
	res.DurationSeconds = time.Since(start).Seconds()
	return res, info, nil
}

// sane checks what the compare relies on: one more segment than
// boundaries (a keyed table), or exactly one (a table without a key).
func (mt *ManifestTable) sane() error {
	if len(mt.Segments) != len(mt.Boundaries)+1 {
		return fmt.Errorf("table %s has %d segments for %d boundaries", mt.id(), len(mt.Segments), len(mt.Boundaries))
	}
	return nil
}

// refuseManifestSource refuses a target that is the manifest's source
// database itself (same rule as refuseSameDatabase).
func refuseManifestSource(ctx context.Context, dst *side, m *Manifest) error {
	id, err := readIdentity(ctx, dst.ctl)
	if err != nil {
		return fmt.Errorf("target: read database identity: %s", oneLine(err))
	}
	s := m.Source
	if id.DBOid == s.DatabaseOID && id.Started == s.ServerStarted && (id.SystemID == "" || s.SystemID == "" || id.SystemID == s.SystemID) {
		return fmt.Errorf("the target is the database the manifest was written from (%q, oid %d, server started %s): comparing it with itself proves nothing; check --target",
			id.Name, id.DBOid, id.Started)
	}
	return nil
}

// targetFingerprint is the target's schema fingerprint over the tables the
// manifest covers (all of them, unless it was written for some tables).
func targetFingerprint(dstTables, dviews, srcTables []*table, filtered bool) string {
	keep := map[string]bool{}
	for _, t := range srcTables {
		keep[t.id()] = true
	}
	var tables, views []*ManifestTable
	for _, t := range dstTables {
		if !filtered || keep[t.id()] {
			tables = append(tables, manifestTable(t))
		}
	}
	for _, v := range dviews {
		views = append(views, manifestTable(v))
	}
	return schemaFingerprint(tables, views)
}

// compareManifestRows compares every pair's rows with the manifest, Jobs
// tables at a time, each on its own target connection in the snapshot.
func compareManifestRows(ctx context.Context, dst *side, pairs []tablePair, byTable map[*table]*ManifestTable,
	paths map[*ManifestTable]string, o ManifestCompareOptions, res *DBResult) error {
	checks := make([]*tableCheck, len(pairs))
	for i, p := range pairs {
		tc := &tableCheck{pair: p, res: &TableResult{Table: p.src.id(), max: o.MaxListed}}
		for _, c := range p.cols {
			tc.res.Columns = append(tc.res.Columns, c.Name)
		}
		checks[i] = tc
		res.Tables = append(res.Tables, tc.res)
	}
	workers, closeAll, err := openWorkers(ctx, min(o.Jobs, max(len(checks), 1)), nil, dst)
	defer closeAll()
	if err != nil {
		return err
	}
	var done atomic.Int64
	return runPool(ctx, workers, checks, func(ctx context.Context, w *dbWorker, t *tableCheck) error {
		mt := byTable[t.pair.src]
		err := t.checkManifest(ctx, w, mt, paths[mt], o)
		if o.Progress != nil {
			o.Progress(int(done.Add(1)), len(checks))
		}
		return err
	})
}

// checkManifest compares one table with its manifest entry: by segment
// and then row by key when the target has the same key and every hashed
// column; by whole-table checksum (rows only on one side counted) when the
// key differs; not at all, but flagged, when the target lacks a hashed
// column (a schema difference says which).
func (t *tableCheck) checkManifest(ctx context.Context, w *dbWorker, mt *ManifestTable, rowsPath string, o ManifestCompareOptions) error {
	if len(t.pair.cols) != len(mt.Columns) {
		// The row hashes cover a column the target lacks: the rows cannot
		// be shown equal. Keyed tables keep their key in the result so the
		// output does not call them keyless; the schema difference says why.
		t.res.Key, t.res.KeyKind = mt.Key, mt.KeyKind
		var n int64
		if err := w.dst.QueryRow(ctx, "SELECT count(*) FROM "+t.pair.dst.qname()).Scan(&n); err != nil {
			return fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
		}
		t.tally(1, mt.Rows, n, true)
		t.res.ChecksumDiffer = true
		return nil
	}
	if len(mt.Key) > 0 {
		t.key = t.pair.keyColumns()
	}
	if t.key != nil {
		t.res.Key, t.res.KeyKind = t.pair.src.Key, t.pair.src.KeyKind
		return t.checkManifestKeyed(ctx, w, mt, rowsPath)
	}
	return t.checkManifestKeyless(ctx, w, mt, rowsPath)
}

func (t *tableCheck) checkManifestKeyed(ctx context.Context, w *dbWorker, mt *ManifestTable, rowsPath string) error {
	for _, b := range mt.Boundaries {
		t.bnds = append(t.bnds, []string{b})
	}
	dm, err := t.bucketSums(ctx, w.dst)
	if err != nil {
		return fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
	}
	var differ []int
	for i, seg := range mt.Segments {
		sv, dv := sum{rows: seg.Rows, hash: seg.Hash}, dm[i]
		t.tally(1, sv.rows, dv.rows, sv != dv)
		if sv != dv {
			differ = append(differ, i)
		}
	}
	if len(differ) == 0 {
		return nil
	}
	if rowsPath == "" {
		return fmt.Errorf("manifest: table %s has no rows file", t.res.Table)
	}
	// Batches of segments whose source rows fit in memory, one pass over
	// the rows file each.
	for len(differ) > 0 {
		n, rows := 0, int64(0)
		for n < len(differ) && (n == 0 || rows+mt.Segments[differ[n]].Rows <= manifestBatchRows) {
			rows += mt.Segments[differ[n]].Rows
			n++
		}
		if err := t.nameRows(ctx, w, rowsPath, differ[:n]); err != nil {
			return err
		}
		differ = differ[n:]
	}
	return nil
}

// nameRows reads the source's rows of the given segments from the rows
// file and the target's from the database, and lists every row missing,
// extra or changed, by key.
func (t *tableCheck) nameRows(ctx context.Context, w *dbWorker, rowsPath string, segs []int) error {
	want := map[int]bool{}
	for _, s := range segs {
		want[s] = true
	}
	r, err := openRowsFile(rowsPath, t.res.Table, len(t.key))
	if err != nil {
		return err
	}
	defer r.close()
	if !r.keyed {
		return r.damaged(errors.New("keyless rows file for a keyed table"))
	}
	// Keys are held joined by NUL (which no PostgreSQL text holds): one
	// string per row, shared by the map and the segment's list.
	src := map[string]int64{}
	keys := map[int][]string{}
	for {
		seg, key, h, err := r.nextKeyed()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if want[seg] {
			id := strings.Join(key, "\x00")
			src[id] = h
			keys[seg] = append(keys[seg], id)
		}
	}
	for _, i := range segs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var lo, hi []string
		if i > 0 {
			lo = t.bnds[i-1]
		}
		if i < len(t.bnds) {
			hi = t.bnds[i]
		}
		dm, dk, err := t.rowHashes(ctx, w.dst, lo, hi)
		if err != nil {
			return fmt.Errorf("target: %s", err)
		}
		for _, id := range keys[i] {
			dh, ok := dm[id]
			switch {
			case !ok:
				t.res.addRow(RowDiff{Kind: "missing", Key: t.showKey(strings.Split(id, "\x00"))})
			case dh != src[id]:
				t.res.addRow(RowDiff{Kind: "changed", Key: t.showKey(strings.Split(id, "\x00"))})
			}
		}
		delete(keys, i)
		for _, k := range dk {
			if _, ok := src[strings.Join(k, "\x00")]; !ok {
				t.res.addRow(RowDiff{Kind: "extra", Key: t.showKey(k)})
			}
		}
	}
	return nil
}

// checkManifestKeyless compares the whole table's checksum and, when it
// differs and the table is small enough, counts the rows only one side has.
func (t *tableCheck) checkManifestKeyless(ctx context.Context, w *dbWorker, mt *ManifestTable, rowsPath string) error {
	var total big.Int
	var rows int64
	for _, s := range mt.Segments {
		var v big.Int
		if _, ok := v.SetString(s.Hash, 10); !ok {
			return fmt.Errorf("manifest: table %s: segment checksum %q is not a number", t.res.Table, s.Hash)
		}
		total.Add(&total, &v)
		rows += s.Rows
	}
	sv := sum{rows: rows, hash: total.String()}
	dv, err := t.sumOf(ctx, w.dst, nil, nil)
	if err != nil {
		return fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
	}
	t.tally(1, sv.rows, dv.rows, sv != dv)
	if sv == dv {
		return nil
	}
	t.res.mu.Lock()
	t.res.ChecksumDiffer = true
	t.res.mu.Unlock()
	if rowsPath == "" || max(sv.rows, dv.rows) > maxKeylessDiff {
		return nil
	}
	m := map[int64]int64{}
	r, err := openRowsFile(rowsPath, t.res.Table, len(mt.Key))
	if err != nil {
		return err
	}
	defer r.close()
	for {
		if r.keyed {
			_, _, h, err := r.nextKeyed()
			if err == io.EOF {
				break
			} else if err != nil {
				return err
			}
			m[h]++
			continue
		}
		h, n, err := r.nextKeyless()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		m[h] += n
	}
	var h, n int64
	rs, _ := w.dst.Query(ctx, t.keylessHashes())
	for rs.Next() {
		if err := rs.Scan(&h, &n); err != nil {
			rs.Close()
			return fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
		}
		m[h] -= n
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("target: %s: %s", t.res.Table, oneLine(err))
	}
	t.res.mu.Lock()
	defer t.res.mu.Unlock()
	for _, n := range m {
		if n > 0 {
			t.res.Missing += n
		} else {
			t.res.Extra -= n
		}
	}
	return nil
}
