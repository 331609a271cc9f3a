package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// DBOptions configure VerifyDB. Zero values get defaults in fill().
type DBOptions struct {
	Source, Target string   // connection strings
	Tables         []string // only these (schema.table); default all
	Jobs           int      // segment checks in flight, each on one source and one target connection; default 4
	SegmentRows    int64    // rows per segment (by the source's key order); default 100,000
	LeafRows       int64    // bisection stops at segments this small and compares row by row; default 1,000
	MaxListed      int      // differing rows listed per table (counts are always complete); default 100
	// AllowEmpty accepts two databases without tables as identical;
	// otherwise "nothing to compare" is an error (a wrong database name).
	AllowEmpty bool
	// Progress, if set, is called after every table.
	Progress func(done, total int)
}

func (o *DBOptions) fill() {
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	if o.SegmentRows <= 0 {
		o.SegmentRows = 100_000
	}
	if o.LeafRows <= 0 {
		o.LeafRows = 1000
	}
	if o.MaxListed <= 0 {
		o.MaxListed = 100
	}
}

// DBResult is verify db's report (also its JSON form).
type DBResult struct {
	Source          string          `json:"source"` // passwords redacted
	Target          string          `json:"target"`
	Tables          []*TableResult  `json:"tables"`
	Schema          []SchemaDiff    `json:"schema_differences"`
	Sequences       []SequenceCheck `json:"sequences"`
	TablesChecked   int             `json:"tables_checked"`
	TablesDiffer    int             `json:"tables_differ"`
	SequencesBehind int             `json:"sequences_behind"`
	RowsSource      int64           `json:"rows_source"`
	RowsTarget      int64           `json:"rows_target"`
	Segments        int             `json:"segments"`
	DurationSeconds float64         `json:"duration_seconds"`
}

// OK reports whether the databases match.
func (r *DBResult) OK() bool {
	return r.TablesDiffer == 0 && len(r.Schema) == 0 && r.SequencesBehind == 0
}

// TableResult is one table's comparison.
type TableResult struct {
	Table          string    `json:"table"` // schema.name
	Key            []string  `json:"key,omitempty"`
	KeyKind        string    `json:"key_kind,omitempty"` // primary key, unique index, or "" (whole-table checksum)
	SourceRows     int64     `json:"source_rows"`
	TargetRows     int64     `json:"target_rows"`
	Segments       int       `json:"segments"`
	SegmentsDiffer int       `json:"segments_differ"`
	Missing        int64     `json:"rows_missing"` // on the target
	Extra          int64     `json:"rows_extra"`   // only on the target
	Changed        int64     `json:"rows_changed"`
	ChecksumDiffer bool      `json:"checksum_differs,omitempty"` // tables without a key
	Rows           []RowDiff `json:"rows,omitempty"`
	RowsNotListed  int64     `json:"rows_not_listed,omitempty"`
	Columns        []string  `json:"columns_compared,omitempty"`

	mu  sync.Mutex
	max int
}

// Differs reports whether the table's data differs.
func (t *TableResult) Differs() bool {
	return t.SourceRows != t.TargetRows || t.SegmentsDiffer > 0 || t.ChecksumDiffer ||
		t.Missing+t.Extra+t.Changed > 0
}

// RowDiff is one differing row, by key.
type RowDiff struct {
	Kind    string   `json:"kind"` // missing, extra, changed
	Key     string   `json:"key"`  // col=value, ...
	Columns []string `json:"columns,omitempty"`
}

func (t *TableResult) addRow(d RowDiff) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch d.Kind {
	case "missing":
		t.Missing++
	case "extra":
		t.Extra++
	default:
		t.Changed++
	}
	if len(t.Rows) < t.max {
		t.Rows = append(t.Rows, d)
	} else {
		t.RowsNotListed++
	}
}

// sessionParams make the text form of every value identical on both sides,
// so equal data hashes equal. The empty search_path makes format_type()
// qualify user types (for the casts of key values). enable_sort=off: the
// planner cannot estimate the few groups of the per-segment aggregate and
// would otherwise sort every row of the table before summing (3x slower
// than hashing); where a sort is the only plan it still sorts. jit=off:
// enable_sort=off inflates plan costs past jit_above_cost, and PostgreSQL
// then compiled each segment query — about 6 s of LLVM work on a 337-row
// database (0.12 s without); hashing text has nothing for JIT to speed up.
var sessionParams = map[string]string{
	"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
	"extra_float_digits": "3", "bytea_output": "hex", "lc_monetary": "C",
	"search_path": "", "application_name": "kwickmig verify", "enable_sort": "off",
	"jit": "off",
}

// side is one database: the connection string and the exported snapshot
// every connection of the run reads.
type side struct {
	name     pgutil.Side
	cfg      *pgx.ConnConfig
	ctl      *pgx.Conn // holds the snapshot transaction
	snapshot string
}

func openSide(ctx context.Context, name pgutil.Side, url string) (*side, error) {
	cfg, err := pgutil.ParseConfig(name, url)
	if err != nil {
		return nil, err
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	s := &side{name: name, cfg: cfg}
	if s.ctl, err = pgutil.ConnectConfig(ctx, name, cfg); err != nil {
		return nil, err
	}
	if _, err := s.ctl.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		s.close()
		return nil, fmt.Errorf("%s: begin: %s", name, oneLine(err))
	}
	if err := s.ctl.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&s.snapshot); err != nil {
		s.close()
		return nil, fmt.Errorf("%s: export snapshot: %s", name, oneLine(err))
	}
	return s, nil
}

// worker opens one more connection in the side's snapshot.
func (s *side) worker(ctx context.Context) (*pgx.Conn, error) {
	c, err := pgutil.ConnectConfig(ctx, s.name, s.cfg)
	if err != nil {
		return nil, err
	}
	sql := "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '" + s.snapshot + "'"
	if err := c.PgConn().Exec(ctx, sql).Close(); err != nil {
		c.Close(context.Background())
		return nil, fmt.Errorf("%s: import snapshot: %s", s.name, oneLine(err))
	}
	return c, nil
}

func (s *side) close() {
	if s != nil && s.ctl != nil {
		s.ctl.Close(context.Background())
	}
}

// VerifyDB compares the target database with the source: schema, every
// table's rows, and sequences. Each side is read in one snapshot (exported
// by a control connection and imported by every worker), so the result is
// consistent even while the application still writes. It returns an error
// only when it could not run.
func VerifyDB(ctx context.Context, o DBOptions) (*DBResult, error) {
	o.fill()
	start := time.Now()
	res := &DBResult{Source: pgutil.Redact(o.Source), Target: pgutil.Redact(o.Target)}
	var src, dst *side
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { src, err = openSide(gctx, pgutil.Source, o.Source); return })
	g.Go(func() (err error) { dst, err = openSide(gctx, pgutil.Target, o.Target); return })
	err := g.Wait()
	defer src.close()
	defer dst.close()
	if err != nil {
		return nil, err
	}
	if err := refuseSameDatabase(ctx, src.ctl, dst.ctl); err != nil {
		return nil, err
	}
	var srcTables, dstTables []*table
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() (err error) { srcTables, err = readCatalog(gctx, pgutil.Source, src.ctl); return })
	g.Go(func() (err error) { dstTables, err = readCatalog(gctx, pgutil.Target, dst.ctl); return })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(srcTables) == 0 && len(dstTables) == 0 && !o.AllowEmpty {
		return nil, fmt.Errorf("nothing to compare: source database %q and target database %q have no tables (wrong database name? --allow-empty accepts this)",
			src.cfg.Database, dst.cfg.Database)
	}
	srcTables, err = filterTables(srcTables, o.Tables)
	if err != nil {
		return nil, err
	}
	pairs, schemaDiffs := compareSchema(srcTables, dstTables, len(o.Tables) > 0)
	res.Schema = schemaDiffs
	more, err := compareObjects(ctx, src.ctl, dst.ctl, srcTables, len(o.Tables) > 0, res) // privileges.go, matviews.go
	if err != nil {
		return nil, err
	}
	pairs = append(pairs, more...)

	if err := checkTables(ctx, src, dst, pairs, o, res); err != nil {
		return nil, err
	}
	seqs, err := checkSequences(ctx, src.ctl, dst.ctl, srcTables)
	if err != nil {
		return nil, err
	}
	res.Sequences = seqs
	for _, s := range seqs {
		if !s.OK {
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
	return res, nil
}
