package pgdelta

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
)

const receiptsDDL = `CREATE TABLE receipts (
	id bigint PRIMARY KEY, store int NOT NULL, total numeric(12,2), created timestamptz NOT NULL, payload jsonb)`

// BenchmarkFinalDelta measures one delta round of N changed rows (default
// 100,000: 50k updates, 30k inserts, 20k deletes on a receipts-like table
// with a ~600-byte jsonb payload). Target: under 10 s.
//
//	go run ./tools/testenv -s3=false -- go test -run '^$' -bench FinalDelta -benchtime 1x ./internal/pgdelta/
//
// KWICKMIG_DELTA_BENCH_ROWS changes N; KWICKMIG_DELTA_BENCH_BASE_ROWS makes
// the table larger (the same changes on a bigger database should cost the
// same: each round reads the log through its txid index and applies through
// the key index).
func BenchmarkFinalDelta(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("KWICKMIG_DELTA_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	upd, ins, del := n/2, n*3/10, n/5
	base := upd + del
	if v, err := strconv.Atoi(os.Getenv("KWICKMIG_DELTA_BENCH_BASE_ROWS")); err == nil && v > base {
		base = v
	}
	payload := `jsonb_build_object('lines', (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || (g * 7 + k) % 1000, 'qty', k, 'price', 1.25 * k)) FROM generate_series(1, 9) k), 'cashier', 'c' || g % 50, 'note', repeat('x', 60))`
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b, receiptsDDL)
		for lo := 1; lo <= base; lo += 200000 {
			kmtest.Exec(b, e.SourceURL, fmt.Sprintf(`INSERT INTO receipts SELECT g, g %% 300, g * 0.37, now() - g * interval '1 minute', %s FROM generate_series(%d, %d) g`,
				payload, lo, min(base, lo+199999)))
		}
		e.install(InstallOptions{})
		e.bulkCopy(nil)
		// the bulk copy was days ago: its checkpoint is long done
		kmtest.Exec(b, e.TargetURL, `VACUUM ANALYZE receipts`, `CHECKPOINT`)
		kmtest.Exec(b, e.SourceURL, `VACUUM ANALYZE receipts`, `CHECKPOINT`)
		t0 := time.Now()
		kmtest.Exec(b, e.SourceURL,
			fmt.Sprintf(`UPDATE receipts SET total = total + 1, payload = payload || '{"refunded": true}' WHERE id <= %d`, upd),
			fmt.Sprintf(`INSERT INTO receipts SELECT g, g %% 300, g * 0.37, now(), %s FROM generate_series(%d, %d) g`, payload, base+1, base+ins),
			fmt.Sprintf(`DELETE FROM receipts WHERE id > %d AND id <= %d`, upd, upd+del))
		srcTime := time.Since(t0)
		logBytes := e.count(e.SourceURL, `SELECT pg_total_relation_size('kwickmig.log')`)
		dbBytes := e.count(e.SourceURL, `SELECT pg_database_size(current_database())`)
		b.StartTimer()
		start := time.Now()
		res := e.finalDelta(Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), BatchRows: benchBatch()})
		el := time.Since(start)
		b.StopTimer()
		if res.Rows != int64(n) {
			b.Fatalf("applied %d rows, want %d", res.Rows, n)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "changes/s")
		b.Logf("%d changes applied in %.2f s (%.0f changes/s) to a %d-row table (database %d MiB); change log %d MiB; the source's own 3 statements (with capture triggers) took %.2f s",
			n, el.Seconds(), float64(n)/el.Seconds(), base+ins-del, dbBytes>>20, logBytes>>20, srcTime.Seconds())
		q := `SELECT count(*)::text || ' ' || sum(hashtextextended(x::text, 0))::text FROM receipts x`
		if a, c := one(b, e.src(), q), one(b, e.tgt(), q); a != c {
			b.Fatalf("receipts differ: source %s, target %s", a, c)
		}
	}
}

func one(tb testing.TB, c *pgx.Conn, q string) string {
	tb.Helper()
	var s string
	if err := c.QueryRow(context.Background(), q).Scan(&s); err != nil {
		tb.Fatal(err)
	}
	return s
}

func benchBatch() int {
	v, _ := strconv.Atoi(os.Getenv("KWICKMIG_DELTA_BENCH_BATCH"))
	return v
}
