package pgdelta

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// The apply is exact (apply_exact.go): every insert must add its row and
// every update or delete must find its row. One history is valid and still
// not exact: a partition taken over after install (partitions.go) gets its
// whole content logged (a TRUNCATE of it, then an insert of every row), and
// the changes logged for its rows before that may name rows the target
// never had (a table attached with rows that were never logged) or rows
// the take-over's inserts meet again (a partition a foreign key references
// is not truncated). The take-over replaces that partition's content, so
// those earlier changes only need to leave the right rows behind: for each
// table with a take-over, every change up to the take-over's last log row
// (its watermark) is applied leniently (insert or update as an upsert, a
// delete of a missing row ignored); later changes are exact again.
//
// The watermarks live on the source in kwickmig.meta ('takeover:<tid>'),
// so a round resumed by a later run is still applied the same way, and
// travel in each exported round's manifest for import-delta.

// maxLogID returns the newest log row id (0 for an empty log).
func maxLogID(ctx context.Context, source *pgx.Conn) (int64, error) {
	var id int64
	if err := source.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM kwickmig.log`).Scan(&id); err != nil {
		return 0, fmt.Errorf("source: read change log: %w", err)
	}
	return id, nil
}

// knownPartitions returns the relids of kwickmig.partitions with their tid.
func knownPartitions(ctx context.Context, source *pgx.Conn) (map[uint32]int32, error) {
	out := map[uint32]int32{}
	var ok bool
	if err := source.QueryRow(ctx, `SELECT to_regclass('kwickmig.partitions') IS NOT NULL`).Scan(&ok); err != nil || !ok {
		return out, err
	}
	rows, err := source.Query(ctx, `SELECT relid, tid FROM kwickmig.partitions WHERE state = 'attached'`)
	if err != nil {
		return nil, fmt.Errorf("source: read partitions: %w", err)
	}
	var relid uint32
	var tid int32
	_, err = pgx.ForEachRow(rows, []any{&relid, &tid}, func() error {
		out[relid] = tid
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("source: read partitions: %w", err)
	}
	return out, nil
}

// followPartitionsWatermarked runs followPartitions and records, for every
// table one of whose partitions it took over, the watermark: the newest log
// row of that table once the take-over committed (later rows of other
// writers are included; they are only applied leniently too). It returns
// every watermark recorded so far.
func followPartitionsWatermarked(ctx context.Context, source, target *pgx.Conn) (map[int32]int64, error) {
	before, err := knownPartitions(ctx, source)
	if err != nil {
		return nil, err
	}
	from, err := maxLogID(ctx, source)
	if err != nil {
		return nil, err
	}
	if err := followPartitions(ctx, source, target); err != nil {
		return nil, err
	}
	after, err := knownPartitions(ctx, source)
	if err != nil {
		return nil, err
	}
	for relid, tid := range after {
		if _, ok := before[relid]; ok {
			continue
		}
		_, err := source.Exec(ctx, `INSERT INTO kwickmig.meta (key, value)
			SELECT 'takeover:' || $1::int, max(id)::text FROM kwickmig.log WHERE id > $2 AND tid = $1 HAVING max(id) IS NOT NULL
			ON CONFLICT (key) DO UPDATE SET value = greatest(kwickmig.meta.value::bigint, EXCLUDED.value::bigint)::text`, tid, from)
		if err != nil {
			return nil, fmt.Errorf("source: record partition take-over: %w", err)
		}
	}
	return takeoverWatermarks(ctx, source)
}

// takeoverWatermarks reads the recorded watermarks.
func takeoverWatermarks(ctx context.Context, source *pgx.Conn) (map[int32]int64, error) {
	rows, err := source.Query(ctx, `SELECT key, value FROM kwickmig.meta WHERE key LIKE 'takeover:%'`)
	if err != nil {
		return nil, fmt.Errorf("source: read partition take-overs: %w", err)
	}
	out := map[int32]int64{}
	var k, v string
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		tid, err1 := strconv.ParseInt(strings.TrimPrefix(k, "takeover:"), 10, 32)
		id, err2 := strconv.ParseInt(v, 10, 64)
		if err1 == nil && err2 == nil {
			out[int32(tid)] = id
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("source: read partition take-overs: %w", err)
	}
	return out, nil
}

// lenient reports whether log row r lies at or before its table's take-over.
func (a *applier) lenient(r logRow) bool {
	w, ok := a.takeover[r.TID]
	return ok && r.ID <= w
}

// lenientUpsertSQL is the insert-or-update statement for rows before a
// take-over.
func (ti *tableInfo) lenientUpsertSQL() string {
	isKey := map[string]bool{}
	var keys []string
	for _, k := range ti.Key {
		isKey[k] = true
		keys = append(keys, pgutil.QuoteIdent(k))
	}
	var sets []string
	for _, c := range ti.Cols {
		if !isKey[c] {
			sets = append(sets, fmt.Sprintf("%[1]s = EXCLUDED.%[1]s", pgutil.QuoteIdent(c)))
		}
	}
	conflict := "DO NOTHING"
	if len(sets) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(sets, ", ")
	}
	return ti.upsertSQL + "\nON CONFLICT (" + strings.Join(keys, ", ") + ") " + conflict
}
